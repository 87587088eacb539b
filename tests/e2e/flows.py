"""What a Label Studio user does with this backend, step by step, through Label Studio's REST API:
make a project on local-files media, connect the backend, annotate, wait for training, retrieve predictions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures.ls_api import ApiError, Backend, LabelStudio, LabelStudioApi


@dataclass
class Project:
    """A Label Studio project connected to a backend, with its tasks and annotations by media file name."""

    ls: LabelStudio
    backend: Backend
    id: int
    ml_id: int
    tasks: dict[str, int]
    annotations: dict[str, int] = field(default_factory=dict)

    @property
    def api(self) -> LabelStudioApi:
        return self.ls.api

    def training_runs(self) -> int:
        return self.backend.health.project_state(self.id).get("runs", 0)

    def wait_trained(self, runs_before: int, timeout_s: float = 300) -> dict[str, Any]:
        """The finished run's job state; fails with the backend log when the run failed."""
        state = self.backend.health.wait_trained(self.id, runs_before, timeout_s)
        last = state.get("last") or {}
        assert last.get("status") == "finished", f"training failed: {last}\n{self.backend.log_tail()}"
        print(f"project {self.id}: trained in {state['waited_s']} s: {last.get('metrics')}")
        return state

    def ml_model_version(self) -> str:
        return self.api.ml_backend(self.ml_id)["model_version"]

    def retrieve_predictions(self, files: list[str]) -> dict[str, dict[str, Any]]:
        """The Data Manager action; returns, per file, the stored prediction of the backend's current version."""
        answer = self.api.retrieve_predictions(self.id, [self.tasks[f] for f in files])
        version = self.ml_model_version()
        stored = {}
        for name in files:
            predictions = self.api.predictions(self.tasks[name])
            current = [p for p in predictions if p["model_version"] == version]
            assert current, (
                f"no prediction of version {version!r} stored for {name} (task {self.tasks[name]}); "
                f"action answered {answer}; stored versions: {[p['model_version'] for p in predictions]}\n"
                f"{self.backend.log_tail()}"
            )
            stored[name] = current[-1]
        return stored


def assert_repredicted(project: Project, task_id: int, version_before: str) -> None:
    """The task holds the backend's new version once, beside earlier ones: with pushing on, the labeling loop
    may have given it every version trained meanwhile, but never one version twice."""
    held = Counter(p["model_version"] for p in project.api.predictions(task_id))
    version = project.ml_model_version()
    assert version != version_before and held[version] == 1 and len(held) >= 2, held
    assert max(held.values()) == 1, f"a version held twice: {held}"


def create_project(ls: LabelStudio, title: str, label_config: str, folders: list[str], tasks: dict) -> dict:
    """A project with a local-files storage per media folder and one task per entry of `tasks`
    (key: a name for the task, e.g. its media file; value: the task to import)."""
    project = ls.api.create_project(title, label_config)
    for folder in folders:
        ls.api.add_local_storage(project["id"], str(ls.document_root / folder))
    imported = ls.api.import_tasks(project["id"], list(tasks.values()))
    assert len(imported) == len(tasks), f"imported {len(imported)} tasks for {len(tasks)}"
    return {
        "project": project,
        "tasks": {name: task["id"] for name, task in zip(tasks, imported, strict=True)},
    }


def connect(ls: LabelStudio, backend: Backend, created: dict) -> Project:
    """`POST /api/ml` as the Settings > Model page does. Label Studio gives /setup 3 s; the first one warms the
    models (checkpoint load, encoder export), which a loaded machine may not finish in time: connect again then,
    as a user would."""
    project_id = created["project"]["id"]
    for attempt in range(3):
        try:
            ml = ls.api.connect_ml(project_id, backend.url)
            break
        except ApiError as exc:
            if "Read timed out" not in str(exc) or attempt == 2:
                raise
    assert ml["state"] == "CO", f"backend not connected: {ml}\n{backend.log_tail()}"
    return Project(ls, backend, project_id, ml["id"], created["tasks"])


def backend_webhooks(ls: LabelStudio, project_id: int, backend: Backend) -> list[dict]:
    return [hook for hook in ls.api.webhooks(project_id) if hook["url"].startswith(backend.url)]


def annotate(project: Project, examples: list[tuple[str, list[dict]]]) -> None:
    """Submits each example's result as a new annotation: Label Studio sends ANNOTATION_CREATED."""
    for name, result in examples:
        annotation = project.api.create_annotation(project.tasks[name], result)
        project.annotations[name] = annotation["id"]


def yolo_checkpoint(names: list[str]) -> Callable[[Path], None]:
    """A `setup` for start_backend_for: the default `yolov8n-cls.pt` in the model dir, built offline from
    yaml with `names` as its classes (nothing can be downloaded here)."""

    def place(model_dir: Path) -> None:
        from fixtures.yolo_checkpoint import build_checkpoint  # torch loads only for the tests that need it

        build_checkpoint(model_dir / "yolov8n-cls.pt", names=names)

    return place
