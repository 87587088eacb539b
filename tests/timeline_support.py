"""Shared, cached test material for the TimelineLabels tests: calibrated checkpoints, contexts, tasks.

Expensive things (checkpoint building, feature extraction) are built once per process through
module-level caches, so every test module that imports these fixtures reuses them.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from label_studio_sdk.label_interface import LabelInterface

from control_models.base import AnnotatedTask, ModelContext
from tests.yolo_checkpoint import build_checkpoint
from utils.labelstudio.media import MediaResolver
from utils.service.model_store import ModelStore
from utils.service.settings import Settings
from utils.video.reader import FrameBatches

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLICED = SHARED_DATA / "video" / "spliced"
OPOSSUM = SHARED_DATA / "video" / "real" / "opossum_snow_short.mp4"
FROM_NAME = "videoLabels"


@functools.cache
def session_dir() -> Path:
    """One temp dir per process (checkpoints, feature cache, generated media), removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="timeline-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def spliced_checkpoint() -> Path:
    """A 1000-class checkpoint whose BatchNorm was calibrated on frames of the spliced videos."""
    frames = []
    for task in spliced_tasks():
        for _, batch in FrameBatches(Path(task["data"]["video"]), batch_size=2, step=60):
            frames.extend(batch)
    return build_checkpoint(session_dir() / "roots" / "spliced-cls.pt", frames=frames)


@functools.cache
def spliced_labels() -> list[str]:
    return json.loads((SPLICED / "ground_truth.json").read_text())["info"]["labels"]


@functools.cache
def spliced_tasks() -> list[dict[str, Any]]:
    """The shared tasks with absolute video paths and ids 1..8."""
    tasks = json.loads((SPLICED / "tasks.json").read_text())
    return [
        {"id": i, "data": {"video": str(SPLICED / t["data"]["video"])}, "annotations": t["annotations"]}
        for i, t in enumerate(tasks, start=1)
    ]


def annotated(task: dict[str, Any]) -> AnnotatedTask:
    return AnnotatedTask(task_id=task["id"], data=task["data"], regions=task["annotations"][0]["result"])


def timeline_config(labels: list[str], video_attrs: str = 'frameRate="25"', **attrs: str) -> str:
    label_xml = "".join(f'<Label value="{label}"/>' for label in labels)
    attr_xml = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return (
        f'<View><Video name="video" value="$video" {video_attrs}/>'
        f'<TimelineLabels name="{FROM_NAME}" toName="video" {attr_xml}>{label_xml}</TimelineLabels></View>'
    )


def make_context(model_dir: Path, cache_dir: Path | None = None) -> ModelContext:
    """A context with its own model store; the feature cache is shared across tests unless given."""
    cache_dir = cache_dir or session_dir() / "cache"
    settings = Settings.from_env(
        {
            "MODEL_DIR": str(model_dir),
            "CACHE_DIR": str(cache_dir),
            "MODEL_ROOTS": str(session_dir() / "roots"),
            "TORCH_THREADS": "1",  # 2 threads on 2 shared busy cores collapse without OMP_WAIT_POLICY
            "YOLO_OFFLINE": "1",
        }
    )
    return ModelContext(
        project_id="1",
        store=ModelStore(model_dir).control_store("1", FROM_NAME),
        media=MediaResolver(cache_dir=cache_dir, local_roots=(SHARED_DATA, session_dir())),
        settings=settings,
    )


def control_of(config: str):
    return LabelInterface(config).get_control(FROM_NAME)


def assert_valid_prediction(config: str, regions: list[dict[str, Any]]) -> None:
    errors = LabelInterface(config).validate_prediction({"result": regions}, return_errors=True)
    assert errors == [], errors
