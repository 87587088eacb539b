"""The backend Label Studio talks to: labeling config -> one control model per control tag ->
predictions for tasks, and background training on all of a project's annotations."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import torch
from label_studio_sdk.label_interface import LabelInterface

from control_models.base import AnnotatedTask, ControlModel, ModelContext
from control_models.timeline_labels import TimelineLabelsModel
from control_models.timeseries_labels import TimeSeriesLabelsModel
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.client import fetch_annotated_tasks
from utils.labelstudio.media import MediaResolver
from utils.labelstudio.training_data import labelled_tasks
from utils.service.annotation_store import AnnotationStore
from utils.service.errors import BadRequestError, LabelConfigError, TaskError
from utils.service.files import read_json, write_json_atomic
from utils.service.jobs import TrainingJobs
from utils.service.model_store import ModelStore
from utils.service.resources import ResourceCache
from utils.service.settings import Settings

logger = logging.getLogger(__name__)

TRAINING_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"}


CONTROL_MODEL_CLASSES: list[type[ControlModel]] = [TimelineLabelsModel, TimeSeriesLabelsModel]


def project_key(project: Any) -> str:
    """Label Studio names a project "<id>.<created timestamp>" in /setup and /predict, and by id in webhooks."""
    if isinstance(project, dict):
        project = project.get("id")
    if isinstance(project, bool) or project is None:
        raise BadRequestError("'project' is missing")
    text = str(project).split(".", 1)[0].strip()
    if not text.isdigit():
        raise BadRequestError(f"'project' must be a Label Studio project id, got {project!r}")
    return text


def config_hash(label_config: str) -> str:
    return hashlib.sha256(label_config.strip().encode()).hexdigest()[:8]


class TemporalBackend:
    """Everything behind the HTTP routes; one instance per worker process."""

    def __init__(self, settings: Settings, control_classes: list[type[ControlModel]] | None = None):
        self.settings = settings
        torch.set_num_threads(settings.torch_threads)
        self.store = ModelStore(settings.model_dir)
        projects_root = settings.model_dir / "projects"
        self.annotations = AnnotationStore(projects_root)
        self.jobs = TrainingJobs(projects_root, self.train_project)
        self.resources = ResourceCache(max_items=32)
        self.control_classes = control_classes if control_classes is not None else CONTROL_MODEL_CLASSES
        self._predictors = ResourceCache(max_items=64)
        self._setup_credentials: dict[str, LabelStudioCredentials] = {}
        self._env_credentials = (
            LabelStudioCredentials(settings.label_studio_url, settings.label_studio_api_key)
            if settings.label_studio_url
            else None
        )
        self._lock = threading.Lock()

    # --- protocol ----------------------------------------------------------------------------
    def setup(self, project: Any, label_config: str, hostname: str = "", access_token: str = "") -> dict:
        pid = project_key(project)
        if hostname and access_token:
            with self._lock:
                known = self._setup_credentials.get(pid)
                if known is None or (known.url, known.api_key) != (hostname.rstrip("/"), access_token):
                    self._setup_credentials[pid] = LabelStudioCredentials(hostname, access_token)
        self._predictors_for(pid, label_config)  # validates the config and warms the models
        self._remember_config(pid, label_config)
        return {"model_version": self.model_version(pid, label_config)}

    def predict(self, tasks: list[dict[str, Any]], project: Any, label_config: str) -> dict:
        pid = project_key(project)
        models = self._predictors_for(pid, label_config)
        version = self.model_version(pid, label_config)
        return {"results": [self._predict_task(task, models, version) for task in tasks]}

    def handle_event(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Record what a webhook says and schedule training; unused actions are acknowledged."""
        if action not in TRAINING_ACTIONS:
            return {"status": "ignored", "action": action}
        project = payload.get("project")
        pid = project_key(project)
        label_config = project.get("label_config") if isinstance(project, dict) else None
        if label_config:
            self._predictors_for(pid, label_config)  # a broken config is reported, not queued
            self._remember_config(pid, label_config)
        elif not self._stored_config(pid):
            raise BadRequestError(f"project {pid}: no label_config in the webhook and none seen before")
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            annotation, task = payload.get("annotation"), payload.get("task")
            if not isinstance(annotation, dict) or "id" not in annotation or not isinstance(task, dict):
                raise BadRequestError(f"{action} needs 'annotation' (with 'id') and 'task' objects")
            self.annotations.upsert(pid, annotation, task)
        elif action == "ANNOTATIONS_DELETED":
            deleted = payload.get("annotations")
            if not isinstance(deleted, list):
                raise BadRequestError("ANNOTATIONS_DELETED needs an 'annotations' list")
            self.annotations.delete(pid, [a["id"] for a in deleted if isinstance(a, dict) and "id" in a])
        state = self.jobs.request(pid)
        return {"status": "queued", "action": action, "project": pid, "requested": state["requested"]}

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": type(self).__name__, "training": self.jobs.status()}

    def model_version(self, project_id: str, label_config: str) -> str:
        """Changes after every successful training and with the config, so Label Studio re-predicts."""
        trained = self.store.project_version(project_id)["version"]
        return f"{trained}.{config_hash(label_config)}"

    # --- control models ------------------------------------------------------------------------
    def build_control_models(self, project_id: str, label_config: str) -> list[ControlModel]:
        """One model per control tag this backend supports; LabelConfigError when there is none."""
        if not isinstance(label_config, str) or not label_config.strip():
            raise BadRequestError("the label config is empty")
        try:
            interface = LabelInterface(label_config)
        except Exception as exc:  # noqa: BLE001 - the SDK raises many XML/parse error types
            raise LabelConfigError(f"the label config cannot be parsed: {exc}") from exc
        models: list[ControlModel] = []
        for control in interface.controls:
            for cls in self.control_classes:
                if cls.is_control_matched(control):
                    models.append(cls.create(control, self._context(project_id, control.name)))
                    break
        if not models:
            supported = ", ".join(sorted({cls.tag for cls in self.control_classes}))
            raise LabelConfigError(f"the label config has no supported control tag (supported: {supported})")
        return models

    def _predictors_for(self, project_id: str, label_config: str) -> list[ControlModel]:
        key = (project_id, label_config.strip() if isinstance(label_config, str) else label_config)
        return self._predictors.get_or_create(
            key, lambda: self.build_control_models(project_id, label_config)
        )

    def _context(self, project_id: str, control_name: str) -> ModelContext:
        return ModelContext(
            store=self.store.control_store(project_id, control_name),
            media=self._media_for(project_id),
            settings=self.settings,
            resources=self.resources,
        )

    def _credentials_for(self, project_id: str) -> LabelStudioCredentials | None:
        if self._env_credentials is not None:
            return self._env_credentials
        with self._lock:
            return self._setup_credentials.get(project_id)

    def _media_for(self, project_id: str) -> MediaResolver:
        s = self.settings
        return MediaResolver(
            cache_dir=s.cache_dir,
            credentials=lambda: self._credentials_for(project_id),
            local_roots=s.media_roots,
            local_files_document_root=s.local_files_document_root,
            max_bytes=s.media_max_bytes,
            timeout_s=s.media_timeout_s,
        )

    def _predict_task(self, task: Any, models: list[ControlModel], version: str) -> dict[str, Any]:
        regions: list[dict[str, Any]] = []
        task_id = task.get("id") if isinstance(task, dict) else None
        for model in models:
            try:
                if not isinstance(task, dict):
                    raise TaskError(f"task must be an object, got {type(task).__name__}")
                regions.extend(model.predict_regions(task))
            except TaskError as exc:
                logger.warning("task %s, control %s: no prediction: %s", task_id, model.from_name, exc)
            except Exception:  # noqa: BLE001 - one bad task must never fail the batch
                logger.exception("task %s, control %s: prediction failed", task_id, model.from_name)
        scores = [r["score"] for r in regions if isinstance(r.get("score"), (int, float))]
        score = sum(scores) / len(scores) if scores else 0.0
        return {"result": regions, "score": score, "model_version": version}

    # --- training ------------------------------------------------------------------------------
    def _remember_config(self, project_id: str, label_config: str) -> None:
        path = self.store.project_dir(project_id) / "project.json"
        if read_json(path, default={}).get("label_config") != label_config:
            write_json_atomic(path, {"label_config": label_config})

    def _stored_config(self, project_id: str) -> str | None:
        return read_json(self.store.project_dir(project_id) / "project.json", default={}).get("label_config")

    def _training_tasks(self, project_id: str) -> list[dict[str, Any]]:
        if self._env_credentials is not None and self._env_credentials.usable:
            return fetch_annotated_tasks(self._env_credentials, project_id)
        return self.annotations.tasks(project_id)

    def train_project(self, project_id: str) -> dict[str, Any]:
        """Retrain every control of the project on all its annotated tasks (runs in a job thread)."""
        label_config = self._stored_config(project_id)
        if not label_config:
            raise LabelConfigError(f"project {project_id}: no label config known yet")
        models = self.build_control_models(project_id, label_config)
        tasks = labelled_tasks(self._training_tasks(project_id))
        metrics: dict[str, Any] = {}
        trained, failed = 0, 0
        for model in models:
            examples = [
                AnnotatedTask(task_id, data, [r for r in result if r.get("from_name") == model.from_name])
                for task_id, data, result in tasks
            ]
            examples = [example for example in examples if example.regions]
            if not examples:
                metrics[model.from_name] = {"skipped": "no annotated tasks with regions of this control"}
                continue
            try:
                torch.set_num_threads(self.settings.torch_threads)  # YOLO loading resets it process-wide
                result = model.fit(examples)
            except Exception as exc:  # noqa: BLE001 - other controls still train; the old model stays
                logger.error("project %s, control %s: training failed: %s", project_id, model.from_name, exc)
                metrics[model.from_name] = {"error": f"{type(exc).__name__}: {exc}"}
                failed += 1
                continue
            metrics[model.from_name] = result
            trained += "skipped" not in result
        if failed and not trained:
            raise RuntimeError(f"every control failed to train: {metrics}")
        if trained:
            self.store.bump_project_version(project_id)
        return {
            "model_version": self.model_version(project_id, label_config),
            "tasks": len(tasks),
            "metrics": metrics,
        }
