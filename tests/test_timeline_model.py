"""TimelineLabelsModel end to end on the shared videos: simple mode, training, retraining, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from control_models.base import AnnotatedTask, ModelContext, TaskPrediction
from control_models.timeline_labels import TimelineLabelsModel
from fixtures.timeline import (
    FROM_NAME,
    OPOSSUM,
    annotated,
    assert_valid_prediction,
    control_of,
    make_context,
    session_dir,
    spliced_checkpoint,
    spliced_labels,
    spliced_tasks,
    timeline_config,
)
from fixtures.yolo_checkpoint import build_checkpoint
from utils.service.errors import LabelConfigError, TaskError
from utils.temporal.training import scores
from utils.video.regions import regions_to_frame_labels


@pytest.fixture
def context(tmp_path: Path) -> ModelContext:
    return make_context(tmp_path / "models")


def create(config: str, ctx: ModelContext) -> TimelineLabelsModel:
    return TimelineLabelsModel.create(control_of(config), ctx)


@pytest.fixture(scope="module")
def ball_checkpoint() -> Path:
    """Class names set by hand; the head is rigged so 'volleyball' wins on every frame."""
    path = build_checkpoint(
        session_dir() / "roots" / "ball-cls.pt", names=["cat", "soccer_ball", "volleyball"]
    )
    checkpoint = torch.load(path, weights_only=False)
    linear = checkpoint["model"].model[-1].linear
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([0.0, 1.0, 4.0]))
    torch.save(checkpoint, path)
    return path


def trainable_config(labels: list[str], epochs: int) -> str:
    return timeline_config(
        labels,
        model_trainable="true",
        model_path=spliced_checkpoint().name,
        model_classifier_epochs=str(epochs),
        model_frame_step="2",
    )


# --- simple mode ---------------------------------------------------------------------------------
def test_simple_mode_maps_labels_through_predicted_values_and_aligns_frames(ball_checkpoint, context):
    config = (
        '<View><Video name="video" value="$video" frameRate="$fps"/>'
        f'<TimelineLabels name="{FROM_NAME}" toName="video" model_path="{ball_checkpoint.name}">'
        '<Label value="Ball" predicted_values="soccer_ball,volleyball"/><Label value="cat"/>'
        "</TimelineLabels></View>"
    )
    model = create(config, context)
    regions = model.predict_regions({"id": 1, "data": {"video": str(OPOSSUM), "fps": 25}})
    assert [r["value"] for r in regions] == [
        {"ranges": [{"start": 1, "end": 29}], "timelinelabels": ["Ball"]}
    ]
    assert regions[0]["score"] == pytest.approx(np.exp(4) / (1 + np.e + np.exp(4)), abs=1e-3)
    assert (regions[0]["from_name"], regions[0]["to_name"]) == (FROM_NAME, "video")
    assert_valid_prediction(config, regions)
    assert "skipped" in model.fit([])


def test_simple_mode_without_any_matching_label_is_a_config_error(ball_checkpoint, context):
    config = timeline_config(["Dog", "Car"], model_path=ball_checkpoint.name)
    with pytest.raises(LabelConfigError, match="none of its labels"):
        create(config, context)


def test_bad_attributes_are_config_errors_naming_them(ball_checkpoint, context):
    with pytest.raises(LabelConfigError, match="model_score_threshold"):
        create(
            timeline_config(["cat"], model_path=ball_checkpoint.name, model_score_threshold="high"), context
        )
    with pytest.raises(LabelConfigError, match="outside the allowed"):
        create(timeline_config(["cat"], model_path="/etc/passwd"), context)
    with pytest.raises(LabelConfigError, match="downloads are off"):
        create(timeline_config(["cat"]), context)  # default yolov8n-cls.pt is not on this machine


def test_unreadable_video_is_a_task_error(ball_checkpoint, context):
    model = create(timeline_config(["cat"], model_path=ball_checkpoint.name), context)
    broken = session_dir() / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(TaskError, match="broken.mp4"):
        model.predict_regions({"id": 3, "data": {"video": str(broken)}})


# --- trainable mode --------------------------------------------------------------------------------
def test_trainable_model_learns_spliced_videos_and_predicts_held_out_ones(tmp_path):
    labels, tasks = spliced_labels(), spliced_tasks()
    config = trainable_config(labels, epochs=150)
    ctx = make_context(tmp_path / "models")
    trainer, predictor = create(config, ctx), create(config, ctx)
    assert predictor.predict_task(tasks[6]) == TaskPrediction([], 0.0)  # nothing trained yet: no error

    metrics = trainer.fit([annotated(t) for t in tasks[:4]], calibrate_on=[annotated(tasks[5])])
    assert metrics["tasks"] == 4 and not metrics["warm_start"]
    meta = ctx.store.load()[1]
    assert meta["task_ids"] == [1, 2, 3, 4] and meta["labels"] == labels
    # fitted on the held-out frames of the training and on the task kept out of it, whose regions it counts
    assert meta["calibration"]["temperature"] > 0
    assert meta["calibration"]["held_out_regions"] > len(predictor.predict_regions(tasks[5])) > 0

    f1s = []
    for task in tasks[6:]:
        prediction = predictor.predict_task(task)  # picks up the version the other instance saved
        regions = prediction.regions
        assert 0.0 < prediction.score <= 1.0
        assert_valid_prediction(config, regions)
        assert len({r["id"] for r in regions}) == len(regions)
        assert all(0.0 <= r["score"] <= 1.0 for r in regions)
        predicted = regions_to_frame_labels(regions, FROM_NAME, labels, 500)
        truth = regions_to_frame_labels(task["annotations"][0]["result"], FROM_NAME, labels, 500)
        f1s.append(scores(truth, predicted)["macro_f1"])
    assert np.mean(f1s) > 0.5, f1s  # chance (random frames) is about 0.2


def test_adding_a_label_starts_fresh_and_more_annotations_warm_start(tmp_path):
    labels, tasks = spliced_labels(), spliced_tasks()
    ctx = make_context(tmp_path / "models")
    first = create(trainable_config(labels, epochs=5), ctx).fit([annotated(tasks[0])])
    assert not first["warm_start"]

    more = create(trainable_config(labels, epochs=5), ctx).fit([annotated(t) for t in tasks[:2]])
    assert more["warm_start"] and ctx.store.load()[1]["task_ids"] == [1, 2]

    extended = create(trainable_config([*labels, "new_label"], epochs=5), ctx)
    retrained = extended.fit([annotated(t) for t in tasks[:2]])
    assert not retrained["warm_start"]
    assert ctx.store.load()[1]["labels"][-1] == "new_label"
    assert extended.predict_regions(tasks[2]) is not None


def test_fit_without_usable_tasks_is_skipped(tmp_path):
    ctx = make_context(tmp_path / "models")
    model = create(trainable_config(spliced_labels(), epochs=5), ctx)
    missing = {"video": str(session_dir() / "nope.mp4")}
    assert "skipped" in model.fit([AnnotatedTask(9, missing, [])])
    assert ctx.store.current_version() is None


def test_changed_label_set_keeps_serving_the_labels_it_still_has(tmp_path):
    labels, tasks = spliced_labels(), spliced_tasks()
    ctx = make_context(tmp_path / "models")
    create(trainable_config(labels, epochs=60), ctx).fit([annotated(t) for t in tasks[:4]])
    before = create(trainable_config(labels, epochs=60), ctx).predict_regions(tasks[6])
    assert before

    reordered = create(trainable_config(labels[::-1], epochs=60), ctx).predict_regions(tasks[6])
    assert sorted(r["value"]["timelinelabels"][0] for r in reordered) == sorted(
        r["value"]["timelinelabels"][0] for r in before
    )
    kept = labels[1:]
    fewer = create(trainable_config(kept, epochs=60), ctx).predict_regions(tasks[6])
    assert fewer and all(r["value"]["timelinelabels"][0] in kept for r in fewer)
