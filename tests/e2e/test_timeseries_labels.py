"""TimeSeriesLabels on BasicMotions in a real Label Studio: annotate the train CSVs, let Label Studio's webhooks
train the backend, retrieve predictions for the test CSVs, then update, delete, press "train", and look."""

from __future__ import annotations

import pytest
from browser import Page, page_errors, render
from flows import Project, annotate, assert_repredicted, backend_webhooks, connect, create_project

from fixtures.scoring import labels_in, series_scores
from fixtures.shared_sets import timeseries_config

pytestmark = pytest.mark.e2e

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
HZ = 10
MIN_MACRO_F1 = 0.6  # four activities; the majority label scores about 0.1


@pytest.fixture(scope="module")
def train_files(series_set) -> list[str]:
    return [name for name, _ in series_set.examples() if "train" in name]


@pytest.fixture(scope="module")
def test_files(series_set) -> list[str]:
    return sorted(name for name in series_set.ground_truth["files"] if "test" in name)


@pytest.fixture(scope="module")
def project(label_studio, start_backend_for, series_set, train_files, test_files) -> Project:
    config = timeseries_config(
        series_set.labels, CHANNELS, model_classifier_epochs=15, model_classifier_sequence_size=128
    )
    created = create_project(
        label_studio,
        "timeseries-e2e",
        config,
        [series_set.folder],
        series_set.tasks(train_files + test_files),
    )
    # two workers: training happens in the one that got the webhook, predictions may come from the other
    return connect(label_studio, start_backend_for(WORKERS="2"), created)


def test_connecting_creates_a_webhook_to_the_backend(project):
    hooks = backend_webhooks(project.ls, project.id, project.backend)
    assert [hook["url"] for hook in hooks] == [f"{project.backend.url}/webhook"]
    assert hooks[0]["is_active"]


def test_annotations_train_the_backend_and_predictions_are_stored(
    project, series_set, train_files, test_files
):
    version_before = project.ml_model_version()
    annotate(project, [(name, result) for name, result in series_set.examples() if name in train_files])
    project.wait_trained(runs_before=0)

    predictions = project.retrieve_predictions(test_files)

    assert project.ml_model_version() != version_before
    scores = {}
    for name, prediction in predictions.items():
        labels = labels_in(prediction["result"])
        assert labels and labels <= set(series_set.labels), f"{name}: {labels}"
        assert {region["from_name"] for region in prediction["result"]} == {"label"}
        scores[name] = series_scores(prediction["result"], series_set.ground_truth, name, "label", HZ)
    print(f"time series macro-F1 (model, majority baseline): {scores}")
    assert all(score >= MIN_MACRO_F1 and score > baseline + 0.3 for score, baseline in scores.values()), (
        scores
    )


def test_updating_an_annotation_retrains_and_label_studio_repredicts(
    project, series_set, train_files, test_files
):
    runs, version_before = project.training_runs(), project.ml_model_version()
    name = train_files[0]
    result = dict(series_set.examples())[name]
    project.api.update_annotation(project.annotations[name], result[:-1])  # one range fewer
    project.wait_trained(runs)

    predictions = project.retrieve_predictions(test_files[:1])

    assert_repredicted(project, project.tasks[test_files[0]], version_before)
    assert predictions[test_files[0]]["result"]


def test_deleting_an_annotation_retrains_on_the_rest(project, train_files):
    runs = project.training_runs()
    requested = project.backend.health.project_state(project.id)["requested"]
    project.api.delete_annotation(project.annotations.pop(train_files[-1]))
    state = project.wait_trained(runs)
    assert state["requested"] > requested


def test_train_button_trains(project):
    runs = project.training_runs()
    project.api.train(project.ml_id)
    project.wait_trained(runs)


def test_browser_draws_the_predicted_regions(project, test_files):
    name = test_files[0]
    report = render(project.ls.url, [Page("timeseries-prediction", project.id, project.tasks[name])])
    page = report["timeseries-prediction"]
    stored = project.retrieve_predictions([name])[name]["result"]  # the newest version, shown first
    assert page["regions_shown"], page
    assert not page_errors(page), page["problems"]
    assert len(page["outliner_labels"]) == len(stored), page
    assert page["timeseries_channels"] == len(CHANNELS), page
    assert page["timeseries_overview_regions"] == len(stored), page
    assert page["timeseries_brushes"] == len(stored) * len(CHANNELS), page


def test_a_task_with_missing_media_does_not_spoil_the_batch(project, series_set, test_files):
    broken = project.api.import_tasks(project.id, [series_set.tasks(["missing.csv"])["missing.csv"]])[-1]
    project.tasks["missing.csv"] = broken["id"]
    runs = project.training_runs()
    project.api.train(project.ml_id)  # a new version, so that every task is predicted again
    project.wait_trained(runs)

    answer = project.api.retrieve_predictions(project.id, [broken["id"], project.tasks[test_files[1]]])

    good = project.api.predictions(project.tasks[test_files[1]])
    assert good and good[-1]["model_version"] == project.ml_model_version(), answer
    assert good[-1]["result"], good[-1]
    assert all(not p["result"] for p in project.api.predictions(broken["id"]))
    assert "missing.csv" in project.backend.log_tail(400)


def test_deleting_every_annotation_keeps_serving_the_last_model(project, test_files):
    runs = project.training_runs()
    for name in list(project.annotations):
        project.api.delete_annotation(project.annotations.pop(name))
    state = project.wait_trained(runs)  # a run between two deletions may still learn from the rest
    assert "skipped" in state["last"]["metrics"]["label"], state

    predictions = project.retrieve_predictions(test_files[2:3])

    assert project.ml_model_version() == state["last"]["model_version"]  # a skipped run keeps the version
    assert predictions[test_files[2]]["result"]
