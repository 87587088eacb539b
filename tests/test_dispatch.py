"""model.py hands each control tag to its own model, keeps each control's regions to itself, and scores a task
from all of its controls."""

from __future__ import annotations

import pytest

from fixtures.app_factory import make_backend
from fixtures.data import TEST_DATA
from utils.service.errors import LabelConfigError

TWO_CONTROLS = (
    '<View><Video name="video" value="$video"/>'
    '<TimelineLabels name="actions" toName="video"><Label value="Run"/><Label value="Jump"/></TimelineLabels>'
    '<TimelineLabels name="scenes" toName="video"><Label value="Indoor"/><Label value="Outdoor"/></TimelineLabels>'
    '<TimeSeries name="ts" value="$csv" valueType="url"><Channel column="x"/></TimeSeries>'
    '<TimeSeriesLabels name="events" toName="ts"><Label value="Peak"/></TimeSeriesLabels></View>'
)


def region(control: str, kind: str, label: str) -> dict:
    if kind == "timelinelabels":
        value = {"ranges": [{"start": 1, "end": 3}], "timelinelabels": [label]}
    else:
        value = {"start": 0.0, "end": 1.0, "instant": False, "timeserieslabels": [label]}
    return {"from_name": control, "to_name": "video", "type": kind, "value": value}


def test_every_supported_control_gets_its_own_model(settings) -> None:
    models = make_backend(settings).build_control_models("1", TWO_CONTROLS)
    assert [(type(m).__name__, m.from_name) for m in models] == [
        ("RecordingTimelineModel", "actions"),
        ("RecordingTimelineModel", "scenes"),
        ("RecordingTimeSeriesModel", "events"),
    ]


def test_regions_of_one_control_never_reach_another(settings) -> None:
    backend = make_backend(settings)
    result = [
        region("actions", "timelinelabels", "Run"),
        region("scenes", "timelinelabels", "Outdoor"),
        region("events", "timeserieslabels", "Peak"),
    ]
    backend.handle_event(
        "ANNOTATION_CREATED",
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 3, "label_config": TWO_CONTROLS},
            "annotation": {"id": 1, "task": 1, "result": result},
            "task": {"id": 1, "data": {"video": "v.mp4", "csv": "c.csv"}},
        },
    )
    metrics = backend.jobs.wait_idle("3")["last"]["metrics"]
    assert metrics["actions"]["labels"] == {"Run": 1}
    assert metrics["scenes"]["labels"] == {"Outdoor": 1}
    assert metrics["events"]["labels"] == {}  # it saw only its own region (no timeline labels in it)
    assert metrics["events"]["tasks"] == 1


def test_a_tasks_score_is_the_mean_of_its_controls_and_a_control_that_cannot_predict_adds_none(
    settings,
) -> None:
    backend = make_backend(settings)
    result = [region("actions", "timelinelabels", "Run"), region("scenes", "timelinelabels", "Indoor")]
    video = str(TEST_DATA / "video/spliced/spliced_train0.mp4")
    backend.handle_event(
        "ANNOTATION_CREATED",
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 4, "label_config": TWO_CONTROLS},
            "annotation": {"id": 1, "task": 1, "result": result},
            "task": {"id": 1, "data": {"video": video, "csv": "c.csv"}},
        },
    )
    assert backend.jobs.wait_idle("4")["last"]["status"] == "finished"
    csv = str(TEST_DATA / "timeseries/basicmotions/basicmotions_test0.csv")
    tasks = [{"id": 2, "data": {"video": video, "csv": csv}}, {"id": 3, "data": {"video": video}}]
    both, no_series = backend.predict(tasks, {"id": 4}, TWO_CONTROLS)["results"]
    # the timeline controls are sure of their regions (0.9 each); the series control finds nothing (0)
    assert both["score"] == pytest.approx((0.9 + 0.9 + 0.0) / 3) and "error" not in both
    assert no_series["score"] == pytest.approx(0.9) and "events" in no_series["error"]


def test_control_without_labels_is_a_config_error(settings) -> None:
    config = '<View><Video name="v" value="$v"/><TimelineLabels name="t" toName="v"></TimelineLabels></View>'
    with pytest.raises(LabelConfigError, match="no <Label>"):
        make_backend(settings).build_control_models("1", config)
