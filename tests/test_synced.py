"""Video and time series synced in one config: each control predicts and learns on its own regions only,
through the real backend and its real control models."""

from __future__ import annotations

import json

from label_studio_sdk.label_interface import LabelInterface

from fixtures.data import TEST_DATA
from fixtures.timeline import session_dir, spliced_checkpoint, spliced_tasks
from model import TemporalBackend
from utils.service.settings import Settings

BASICMOTIONS = TEST_DATA / "timeseries" / "basicmotions"


def synced_config(checkpoint: str) -> str:
    return (
        '<View><Video name="video" value="$video" frameRate="25" sync="g"/>'
        '<TimelineLabels name="videoLabels" toName="video" model_trainable="true" '
        f'model_path="{checkpoint}" model_classifier_epochs="40">'
        '<Label value="city"/><Label value="cockatoo"/><Label value="arm_wrestling"/><Label value="drink_water"/>'
        "</TimelineLabels>"
        '<TimeSeries name="ts" value="$csv" valueType="url" timeColumn="time" sync="g">'
        '<Channel column="acc_x"/><Channel column="acc_y"/><Channel column="acc_z"/>'
        '<Channel column="gyr_x"/><Channel column="gyr_y"/><Channel column="gyr_z"/></TimeSeries>'
        '<TimeSeriesLabels name="label" toName="ts" model_classifier_epochs="40">'
        '<Label value="walking"/><Label value="standing"/><Label value="running"/><Label value="badminton"/>'
        "</TimeSeriesLabels></View>"
    )


def test_synced_video_and_time_series_train_and_predict_separately(tmp_path) -> None:
    checkpoint = spliced_checkpoint()
    settings = Settings.from_env(
        {
            "MODEL_DIR": str(tmp_path / "models"),
            "CACHE_DIR": str(session_dir() / "cache"),
            "MODEL_ROOTS": str(checkpoint.parent),
            "MEDIA_ROOTS": str(TEST_DATA),
            "TORCH_THREADS": "2",
        }
    )
    config = synced_config(str(checkpoint))
    backend = TemporalBackend(settings)
    ts_tasks = json.loads((BASICMOTIONS / "tasks.json").read_text())
    for i, (video_task, ts_task) in enumerate(zip(spliced_tasks()[:2], ts_tasks[:2], strict=True), start=1):
        result = video_task["annotations"][0]["result"] + ts_task["annotations"][0]["result"]
        task = {
            "id": i,
            "data": {
                "video": video_task["data"]["video"],
                "csv": str(BASICMOTIONS / ts_task["data"]["csv_url"]),
            },
        }
        backend.handle_event(
            "ANNOTATION_CREATED",
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": 5, "label_config": config},
                "annotation": {"id": i, "task": i, "result": result},
                "task": task,
            },
        )
    state = backend.jobs.wait_idle("5", timeout_s=600)
    assert state["last"]["status"] == "finished", state["last"]
    metrics = state["last"]["metrics"]
    assert set(metrics) == {"videoLabels", "label"} and not any("error" in m for m in metrics.values())

    test_task = {
        "id": 9,
        "data": {
            "video": spliced_tasks()[2]["data"]["video"],
            "csv": str(BASICMOTIONS / ts_tasks[4]["data"]["csv_url"]),
        },
    }
    prediction = backend.predict([test_task], "5.1", config)["results"][0]
    by_control = {r["from_name"] for r in prediction["result"]}
    assert by_control == {"videoLabels", "label"}
    for region in prediction["result"]:
        expected_type = "timelinelabels" if region["from_name"] == "videoLabels" else "timeserieslabels"
        assert region["type"] == expected_type
        assert region["to_name"] == ("video" if expected_type == "timelinelabels" else "ts")
    errors = LabelInterface(config).validate_prediction({"result": prediction["result"]}, return_errors=True)
    assert errors == [], errors
