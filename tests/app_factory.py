"""Builds the real app and backend around the test-only control models."""

from __future__ import annotations

from flask import Flask

from _wsgi import create_app
from model import TemporalBackend
from tests.recording_control import RecordingTimelineModel, RecordingTimeSeriesModel
from utils.service.settings import Settings

TEST_CONTROLS = [RecordingTimelineModel, RecordingTimeSeriesModel]


def make_backend(settings: Settings) -> TemporalBackend:
    return TemporalBackend(settings, control_classes=TEST_CONTROLS)


def make_app(settings: Settings) -> Flask:
    return create_app(settings, backend=make_backend(settings))


def app_from_env() -> Flask:
    """gunicorn target for tests that run the real server: `tests.app_factory:app_from_env()`."""
    return make_app(Settings.from_env())


VIDEO_CONFIG = (
    '<View><TimelineLabels name="label" toName="video"><Label value="Ball"/><Label value="Goal"/>'
    '</TimelineLabels><Video name="video" value="$video" frameRate="25.0"/></View>'
)


def annotation_event(action: str, annotation_id: int, task_id: int, label: str, project_id: int = 1) -> dict:
    return {
        "action": action,
        "project": {"id": project_id, "label_config": VIDEO_CONFIG},
        "annotation": {
            "id": annotation_id,
            "task": task_id,
            "was_cancelled": False,
            "ground_truth": False,
            "updated_at": f"2026-11-21T04:35:{annotation_id:02d}Z",
            "result": [
                {
                    "from_name": "label",
                    "to_name": "video",
                    "type": "timelinelabels",
                    "value": {"ranges": [{"start": 1, "end": 5}], "timelinelabels": [label]},
                }
            ],
        },
        "task": {"id": task_id, "data": {"video": f"/data/upload/1/v{task_id}.mp4"}},
    }
