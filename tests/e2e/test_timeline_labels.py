"""TimelineLabels on the spliced videos in a real Label Studio: the trainable mode learns from annotations
submitted through Label Studio and predicts held-out videos; the simple mode predicts with the checkpoint's
own classes. A real browser then shows the predicted timeline."""

from __future__ import annotations

import pytest
from browser import Page, page_errors, render
from flows import Project, annotate, assert_repredicted, connect, create_project, yolo_checkpoint

from fixtures.scoring import frame_sets, labels_in, macro_f1, majority_baseline, truth_frames
from fixtures.shared_sets import timeline_config

pytestmark = pytest.mark.e2e

FROM_NAME = "videoLabels"
TRAIN_FILES = [f"spliced_train{i}.mp4" for i in range(6)]
HELD_OUT = ["spliced_train6.mp4", "spliced_train7.mp4"]
MIN_MACRO_F1 = 0.5  # nine labels; always answering the majority label scores about 0.05
TRAINABLE = {
    "model_trainable": "true",
    "model_classifier_epochs": 60,
    "model_classifier_sequence_size": 16,
}


@pytest.fixture(scope="module")
def backend(start_backend_for, video_set):
    return start_backend_for(setup=yolo_checkpoint(video_set.labels))


@pytest.fixture(scope="module")
def trainable(label_studio, backend, video_set) -> Project:
    config = timeline_config(video_set.labels, **TRAINABLE)
    created = create_project(
        label_studio,
        "timeline-trainable",
        config,
        [video_set.folder],
        video_set.tasks(TRAIN_FILES + HELD_OUT),
    )
    return connect(label_studio, backend, created)


def test_trained_timeline_predicts_held_out_videos(trainable, video_set):
    version_before = trainable.ml_model_version()
    annotate(trainable, [(name, result) for name, result in video_set.examples() if name in TRAIN_FILES])
    trainable.wait_trained(runs_before=0, timeout_s=420)

    predictions = trainable.retrieve_predictions(HELD_OUT)

    assert trainable.ml_model_version() != version_before
    scores = {}
    for name, prediction in predictions.items():
        regions = prediction["result"]
        assert {r["from_name"] for r in regions} == {FROM_NAME}, regions[:3]
        assert {r["type"] for r in regions} == {"timelinelabels"}
        assert labels_in(regions) <= set(video_set.labels)
        expected = truth_frames(video_set.ground_truth, name)
        scores[name] = (macro_f1(frame_sets(regions, FROM_NAME), expected), majority_baseline(expected))
    print(f"video frame macro-F1 (model, majority baseline): {scores}")
    assert all(score >= MIN_MACRO_F1 and score > baseline + 0.3 for score, baseline in scores.values()), (
        scores
    )


def test_updating_an_annotation_gives_a_new_version_and_new_predictions(trainable, video_set):
    runs, version_before = trainable.training_runs(), trainable.ml_model_version()
    name = TRAIN_FILES[0]
    trainable.api.update_annotation(trainable.annotations[name], dict(video_set.examples())[name][1:])
    trainable.wait_trained(runs, timeout_s=420)

    predictions = trainable.retrieve_predictions(HELD_OUT[:1])

    assert_repredicted(trainable, trainable.tasks[HELD_OUT[0]], version_before)
    assert predictions[HELD_OUT[0]]["result"]


def test_simple_mode_predicts_with_the_checkpoint_classes(label_studio, backend, video_set):
    """No training: the checkpoint's class names are the labels; its random weights say something."""
    config = timeline_config(video_set.labels, model_score_threshold=0.0)
    created = create_project(
        label_studio, "timeline-simple", config, [video_set.folder], video_set.tasks(HELD_OUT[:1])
    )
    project = connect(label_studio, backend, created)

    predictions = project.retrieve_predictions(HELD_OUT[:1])

    regions = predictions[HELD_OUT[0]]["result"]
    assert regions, f"no regions in simple mode\n{backend.log_tail()}"
    assert labels_in(regions) <= set(video_set.labels)
    frames = video_set.ground_truth["files"][HELD_OUT[0]]["frames"]
    assert all(1 <= span["start"] <= span["end"] <= frames for r in regions for span in r["value"]["ranges"])


def test_browser_draws_the_predicted_timeline(trainable):
    name = HELD_OUT[0]
    stored = trainable.retrieve_predictions([name])[name]["result"]
    report = render(trainable.ls.url, [Page("timeline-prediction", trainable.id, trainable.tasks[name])])
    page = report["timeline-prediction"]
    labels = sorted(label for r in stored for label in r["value"]["timelinelabels"])
    assert page["regions_shown"], page
    assert not page_errors(page), page["problems"]
    assert sorted(page["outliner_labels"]) == labels, page
    assert sorted(page["timeline_rows"]) == labels, page  # one timeline row per region
    assert page["timeline_lifespans"] > 0 and page["minimap_regions"] > 0, page  # segments drawn on them
    assert page["video_ready_state"] and page["video_ready_state"] >= 2, page  # the video itself loaded


def test_a_new_label_in_the_config_takes_effect_after_training(trainable, video_set):
    """Label Studio sends the new config with the next /predict and the version follows it. A model trained
    on the old label set predicts nothing (logged) until it is trained again: here with the "train" button."""
    version_before = trainable.ml_model_version()
    labels = [*video_set.labels, "extra_label"]
    trainable.api.update_project(trainable.id, label_config=timeline_config(labels, **TRAINABLE))
    trainable.retrieve_predictions(HELD_OUT[1:])
    assert trainable.ml_model_version() != version_before
    runs = trainable.training_runs()
    trainable.api.train(trainable.ml_id)
    trainable.wait_trained(runs, timeout_s=420)

    predictions = trainable.retrieve_predictions(HELD_OUT[1:])

    regions = predictions[HELD_OUT[1]]["result"]
    assert regions, trainable.backend.log_tail()
    assert labels_in(regions) <= set(video_set.labels)
