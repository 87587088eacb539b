"""One project with a video and a time series in sync, each with its own labels control: both controls train
from the same annotations and one prediction per task carries the regions of both."""

from __future__ import annotations

import pytest
from browser import Page, page_errors, render
from flows import Project, annotate, connect, create_project, yolo_checkpoint

from fixtures.servers import wait_until
from fixtures.shared_sets import (
    timeline_control,
    timeseries_control,
    timeseries_object,
    video_object,
    view,
)

pytestmark = pytest.mark.e2e

CHANNELS = ["acc_x", "acc_y", "acc_z"]
KNOWN_SYNC_ERROR = "TypeError: Cannot read properties of null (reading 'sync')"
# (video, csv) per task: three to annotate, one to predict through the Data Manager, one to open
PAIRS = {f"pair{i}": (f"spliced_train{i}.mp4", f"basicmotions_train{i}.csv") for i in range(3)}
HELD_OUT, OPENED = "held_out", "opened"
PAIRS[HELD_OUT] = ("spliced_train6.mp4", "basicmotions_test0.csv")
PAIRS[OPENED] = ("spliced_train7.mp4", "basicmotions_test1.csv")


@pytest.fixture(scope="module")
def project(label_studio, start_backend_for, video_set, series_set) -> Project:
    video, series = video_set, series_set
    config = view(
        video_object(sync="media"),
        timeline_control(video.labels, model_trainable="true", model_classifier_epochs=30),
        timeseries_object(CHANNELS, sync="media"),
        timeseries_control(series.labels, model_classifier_epochs=10, model_classifier_sequence_size=128),
    )
    tasks = {
        name: {"data": {"video": video.media_url(clip), "csv_url": series.media_url(csv)}}
        for name, (clip, csv) in PAIRS.items()
    }
    created = create_project(label_studio, "synced-e2e", config, [video.folder, series.folder], tasks)
    # no shared document root: the backend downloads media from Label Studio with its token
    backend = start_backend_for(setup=yolo_checkpoint(video.labels), LOCAL_FILES_DOCUMENT_ROOT="")
    project = connect(label_studio, backend, created)
    video_results, series_results = dict(video.examples()), dict(series.examples())
    annotate(
        project,
        [
            (name, video_results[clip] + series_results[csv])
            for name, (clip, csv) in PAIRS.items()
            if name not in (HELD_OUT, OPENED)
        ],
    )
    project.wait_trained(runs_before=0, timeout_s=420)
    return project


def test_both_controls_train_and_predict_one_task(project):
    state = project.backend.health.project_state(project.id)
    metrics = state["last"]["metrics"]
    assert set(metrics) == {"videoLabels", "label"}, metrics
    assert not any("skipped" in m or "error" in m for m in metrics.values()), metrics

    prediction = project.retrieve_predictions([HELD_OUT])[HELD_OUT]

    by_control = {}
    for region in prediction["result"]:
        by_control.setdefault((region["from_name"], region["to_name"], region["type"]), []).append(region)
    assert set(by_control) == {
        ("videoLabels", "video", "timelinelabels"),
        ("label", "ts", "timeserieslabels"),
    }


def test_browser_draws_video_and_time_series_regions(project):
    stored = project.retrieve_predictions([HELD_OUT])[HELD_OUT]["result"]
    report = render(project.ls.url, [Page("synced-prediction", project.id, project.tasks[HELD_OUT])])
    page = report["synced-prediction"]
    video_regions = [r for r in stored if r["from_name"] == "videoLabels"]
    series_regions = [r for r in stored if r["from_name"] == "label"]
    assert page["regions_shown"], page
    # Label Studio 1.23's own frontend throws this once on <Video sync> + <TimeSeries sync>; anything else is ours
    assert all(KNOWN_SYNC_ERROR in error for error in page_errors(page)), page["problems"]
    assert len(page["outliner_labels"]) == len(stored), page
    assert len(page["timeline_rows"]) == len(video_regions), page
    assert page["timeseries_overview_regions"] == len(series_regions), page
    assert page["timeseries_brushes"] == len(series_regions) * len(CHANNELS), page


def test_an_opened_task_has_a_prediction_of_the_serving_version(project):
    """The labeling page (`GET /api/tasks/{id}`) shows a prediction of the serving version: pushed after the
    last training, or asked of the backend by Label Studio when the task has none."""
    project.api.task(project.tasks[OPENED])
    current = project.ml_model_version()

    def of_current() -> dict | None:
        stored = project.api.predictions(project.tasks[OPENED])
        return next((p for p in stored if p["model_version"] == current), None)

    prediction = wait_until(of_current, 120, f"a prediction of {current} for the opened task")
    assert {r["from_name"] for r in prediction["result"]} == {"videoLabels", "label"}
    assert "downloading media /data/local-files/?d=video/spliced_train7.mp4" in project.backend.log_tail(2000)
