"""The labeling loop in a real Label Studio: predictions arrive by themselves for imported tasks, move to
every new model version, and a 20-minute video is answered at once by /predict and pushed in full later.
Nobody presses "Retrieve Predictions" here except to check that /predict stays fast on long media."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from flows import Project, annotate, connect, create_project, yolo_checkpoint

from fixtures.scoring import labels_in, series_scores
from fixtures.servers import wait_until
from fixtures.shared_sets import timeline_control, timeseries_config, video_object, view
from fixtures.synthetic_video import write_video

pytestmark = pytest.mark.e2e

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
HZ = 10
MIN_MACRO_F1 = 0.6  # as in test_timeseries_labels: four activities, few epochs
VIDEO_LABELS = ["Ball", "Goal"]


@pytest.fixture(scope="module")
def backend(start_backend_for):
    """Long media: anything over 2 s of estimated work is handed to a job."""
    return start_backend_for(setup=yolo_checkpoint(VIDEO_LABELS), PREDICT_BUDGET_S="2", PUSH_BACKOFF_S="0.5")


@pytest.fixture(scope="module")
def series(label_studio, backend, series_set) -> Project:
    config = timeseries_config(
        series_set.labels, CHANNELS, model_classifier_epochs=15, model_classifier_sequence_size=128
    )
    train = [name for name, _ in series_set.examples() if "train" in name]
    created = create_project(
        label_studio, "loop-timeseries", config, [series_set.folder], series_set.tasks(train)
    )
    return connect(label_studio, backend, created)


def versions_of(project: Project, task_id: int) -> list[str]:
    return [p["model_version"] for p in project.api.predictions(task_id)]


def wait_pushed(project: Project, task_ids: list[int], version: str, timeout_s: float) -> float:
    """Seconds until every task holds a prediction of `version`."""
    started = time.monotonic()

    def all_there() -> bool:
        return all(version in versions_of(project, task_id) for task_id in task_ids)

    try:
        wait_until(all_there, timeout_s, f"predictions of {version} on tasks {task_ids}", 1.0)
    except TimeoutError as exc:
        health = project.backend.health.call("GET", "/health").get("predictions")
        raise AssertionError(f"{exc}\n/health predictions: {health}\n{project.backend.log_tail()}") from exc
    return time.monotonic() - started


def assert_one_prediction_per_version(project: Project, task_ids: list[int]) -> None:
    for task_id in task_ids:
        repeated = {v: n for v, n in Counter(versions_of(project, task_id)).items() if n > 1}
        assert not repeated, f"task {task_id} holds versions more than once: {repeated}"


def test_tasks_imported_after_training_get_predictions_pushed(series, series_set):
    annotate(series, [(name, result) for name, result in series_set.examples() if name in series.tasks])
    version = series.wait_trained(runs_before=0)["last"]["model_version"]
    test_files = sorted(name for name in series_set.ground_truth["files"] if "test" in name)

    imported = series.api.import_tasks(series.id, list(series_set.tasks(test_files).values()))[
        -len(test_files) :
    ]
    series.tasks.update({name: task["id"] for name, task in zip(test_files, imported, strict=True)})
    waited = wait_pushed(series, [series.tasks[name] for name in test_files], version, timeout_s=60)

    print(f"imported tasks carried pushed predictions after {waited:.1f} s")
    assert_one_prediction_per_version(series, list(series.tasks.values()))
    scores = {}
    for name in test_files:
        [prediction] = [
            p for p in series.api.predictions(series.tasks[name]) if p["model_version"] == version
        ]
        assert labels_in(prediction["result"]) <= set(series_set.labels)
        scores[name] = series_scores(prediction["result"], series_set.ground_truth, name, "label", HZ)
    print(f"pushed time-series macro-F1 (model, majority baseline): {scores}")
    assert all(score >= MIN_MACRO_F1 and score > baseline + 0.3 for score, baseline in scores.values()), (
        scores
    )


def test_a_new_model_version_reaches_every_task(series, series_set):
    runs = series.training_runs()
    name = next(iter(series.annotations))
    series.api.update_annotation(series.annotations[name], dict(series_set.examples())[name][:-1])
    version = series.wait_trained(runs)["last"]["model_version"]

    wait_pushed(series, list(series.tasks.values()), version, timeout_s=120)

    assert_one_prediction_per_version(series, list(series.tasks.values()))
    progress = series.backend.health.call("GET", "/health")["predictions"][str(series.id)]
    assert progress["failed"] == 0 and progress["pushed"] >= 2 * len(series.tasks) - 4, progress


def test_a_twenty_minute_video_is_answered_at_once_and_pushed_in_full_later(label_studio, backend):
    fps, minutes = 5, 20  # 6,000 frames, every 10th encoded: about 6 s of work, over the 2 s budget
    frames = write_video(label_studio.document_root / "long" / "twenty-minutes.mp4", minutes, fps, 64, 48)
    config = view(
        video_object(fps=fps),
        timeline_control(VIDEO_LABELS, model_frame_step=10, model_score_threshold=0.05),
    )
    task = {"data": {"video": "/data/local-files/?d=long/twenty-minutes.mp4"}}
    created = create_project(label_studio, "loop-long-video", config, ["long"], {"long": task})
    project = connect(label_studio, backend, created)
    version = project.ml_model_version()
    task_id = project.tasks["long"]

    started = time.monotonic()
    project.api.retrieve_predictions(project.id, [task_id])
    answered_s = time.monotonic() - started
    assert answered_s < 100, answered_s
    assert version not in versions_of(project, task_id)  # nothing stored by /predict: the job pushes it

    seen: list[dict] = []

    def pushed() -> bool:
        current = project.backend.health.call("GET", "/health")["predictions"][str(project.id)]["current"]
        if current:
            seen.append(current)
        return version in versions_of(project, task_id)

    wait_until(pushed, 300, f"the pushed prediction of the {minutes}-minute video", 0.5)
    print(
        f"/predict answered in {answered_s:.1f} s; the pushed prediction came after {time.monotonic() - started:.1f} s"
    )
    [prediction] = [p for p in project.api.predictions(task_id) if p["model_version"] == version]
    ends = [span["end"] for region in prediction["result"] for span in region["value"]["ranges"]]
    assert ends and max(ends) == frames, (
        max(ends, default=None),
        frames,
    )  # the whole video, to its last frame
    assert seen and seen[-1]["frames_total"] == frames and seen[-1]["frames_done"] <= frames, seen[-3:]
