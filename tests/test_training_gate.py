"""Models people can trust: data that cannot give a sane model is refused before training, and a candidate
serves only when the held-out gate accepts it; otherwise the previous model keeps serving and /health says why;
on a project that retrains quickly, the model that serves after an annotation is a full retrain's. Real control
models (time series, and video on a small offline YOLO checkpoint) on generated data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from _wsgi import create_app
from fixtures.yolo_checkpoint import build_checkpoint
from tests.series_support import TS_CONFIG, annotate, annotate_series, ts_regions, write_series
from utils.service.settings import Settings
from utils.temporal.evaluation import held_out_task_ids


@pytest.fixture()
def gate_settings(settings: Settings, tmp_path: Path) -> Settings:
    media = tmp_path / "media"
    media.mkdir()
    return dataclasses.replace(settings, media_roots=(media.resolve(),))


def train(app, config: str) -> dict[str, Any]:
    """One START_TRAINING through the webhook; returns the training outcome that /health shows."""
    client = app.test_client()
    answer = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": config}}
    )
    assert answer.status_code == 200, answer.get_json()
    app.config["BACKEND"].jobs.wait_idle("1", timeout_s=300)
    return client.get("/health").get_json()["training"]["1"]["last"]


def serving(app, control: str) -> str | None:
    return app.config["BACKEND"].store.control_store("1", control).current_version()


def test_overflowing_csv_is_refused_and_the_previous_model_keeps_serving(gate_settings: Settings) -> None:
    app = create_app(gate_settings)
    backend, media = app.config["BACKEND"], gate_settings.media_roots[0]
    annotate_series(backend, media, [1, 2, 3])
    first = train(app, TS_CONFIG)
    assert first["metrics"]["label"]["serving"], first
    version = serving(app, "label")

    backend.annotations.delete("1", [1, 2, 3])
    huge = write_series(media / "huge.csv", 9, scale=1e307)
    annotate(backend, TS_CONFIG, 4, {"csv": str(huge)}, ts_regions())
    last = train(app, TS_CONFIG)
    assert serving(app, "label") == version
    assert "huge.csv column 'x'" in last["rejected"]["label"] and "float32" in last["rejected"]["label"]
    predicted = backend.predict([{"id": 1, "data": {"csv": str(media / "s1.csv")}}], "1", TS_CONFIG)
    assert predicted["results"][0]["result"], "the previous model still predicts"


def test_an_unreadable_task_is_left_out_with_its_reason_and_the_rest_trains(gate_settings: Settings) -> None:
    app = create_app(gate_settings)
    backend, media = app.config["BACKEND"], gate_settings.media_roots[0]
    annotate_series(backend, media, [1, 2])
    annotate(
        backend, TS_CONFIG, 3, {"csv": str(write_series(media / "huge.csv", 3, scale=1e300))}, ts_regions()
    )
    last = train(app, TS_CONFIG)
    summary = last["metrics"]["label"]
    assert summary["serving"] and summary["tasks"] == 2
    assert any("huge.csv" in reason for reason in summary["unusable_tasks"])


def test_label_shuffled_annotations_are_rejected_by_the_held_out_gate(gate_settings: Settings) -> None:
    app = create_app(gate_settings)
    backend, media = app.config["BACKEND"], gate_settings.media_roots[0]
    tasks = annotate_series(backend, media, range(1, 11))
    first = train(app, TS_CONFIG)["metrics"]["label"]
    assert first["serving"] and first["gate"]["scored_on"] == "held-out tasks", first
    held_out = set(first["gate"]["held_out_tasks"])  # every task shows both labels: the hash alone picks them
    assert held_out == held_out_task_ids("1", {task_id: {0, 1} for task_id in tasks})
    assert 1 <= len(held_out) < len(tasks)
    version = serving(app, "label")

    for task_id, data in tasks.items():  # a careless annotator swaps the labels of every training task
        if task_id not in held_out:
            annotate(backend, TS_CONFIG, task_id, data, ts_regions(swap=True))
    last = train(app, TS_CONFIG)
    gate = last["metrics"]["label"]["gate"]
    assert not gate["accepted"] and gate["held_out_tasks"] == sorted(held_out)
    assert gate["candidate_f1"] < gate["serving_f1"]
    assert serving(app, "label") == version
    assert last["rejected"]["label"].startswith("rejected: macro-F1")
    listed = app.test_client().get("/versions?project=1").get_json()["controls"]["label"]
    assert [v["accepted"] for v in listed] == [False, True]


# --- video -------------------------------------------------------------------------------------
VIDEO_LABELS = ("Red", "Blue")


def write_video(path: Path, frames: int) -> Path:
    """`frames` frames at 24 fps: a red first half, a blue second half (none at all when frames == 0)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (64, 64))
    for i in range(frames):
        colour = (0, 0, 255) if i < frames // 2 else (255, 0, 0)  # BGR
        writer.write(np.full((64, 64, 3), colour, dtype=np.uint8))
    writer.release()
    return path


def video_config(checkpoint: str) -> str:
    labels = "".join(f'<Label value="{label}"/>' for label in VIDEO_LABELS)
    return (
        '<View><Video name="video" value="$video" frameRate="24"/>'
        f'<TimelineLabels name="videoLabels" toName="video" model_trainable="true" model_path="{checkpoint}" '
        'model_classifier_epochs="40" model_classifier_sequence_size="8">'
        f"{labels}</TimelineLabels></View>"
    )


def video_regions(frames: int) -> list[dict[str, Any]]:
    half = frames // 2
    spans = {"Red": (1, half), "Blue": (half + 1, frames)}
    return [
        {
            "from_name": "videoLabels",
            "to_name": "video",
            "type": "timelinelabels",
            "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [label]},
        }
        for label, (start, end) in spans.items()
    ]


def test_a_video_without_frames_is_refused_and_the_previous_model_keeps_serving(
    gate_settings: Settings,
) -> None:
    build_checkpoint(gate_settings.model_dir / "tiny-cls.pt")
    config = video_config("tiny-cls.pt")
    app = create_app(dataclasses.replace(gate_settings, yolo_offline=True))
    backend, media = app.config["BACKEND"], gate_settings.media_roots[0]
    for task_id in (1, 2):
        video = write_video(media / f"v{task_id}.mp4", 24)
        annotate(backend, config, task_id, {"video": str(video)}, video_regions(24))
    first = train(app, config)["metrics"]["videoLabels"]
    assert first["serving"], first
    version = serving(app, "videoLabels")

    backend.annotations.delete("1", [1, 2])
    annotate(backend, config, 3, {"video": str(write_video(media / "empty.mp4", 0))}, video_regions(24))
    last = train(app, config)
    assert serving(app, "videoLabels") == version
    assert "empty.mp4" in last["rejected"]["videoLabels"], last


def test_a_cheap_fine_tuning_is_followed_by_a_full_retrain_that_serves_by_itself(
    gate_settings: Settings,
) -> None:
    """FULL_RETRAIN_FOLLOWS_S through the backend: an annotation on a project whose training from scratch is
    quick is fine-tuned on, and a training from scratch on the same annotations follows and serves, unasked."""
    app = create_app(gate_settings)
    backend, media = app.config["BACKEND"], gate_settings.media_roots[0]
    annotate_series(backend, media, [1, 2, 3, 4])
    assert not train(app, TS_CONFIG)["metrics"]["label"]["warm_start"]
    store = backend.store.control_store("1", "label")
    first = store.current_version()
    annotate_series(backend, media, [5])  # 1.25 times the data: not enough to ask for a retrain by itself
    backend.jobs.request("1")  # what an annotation's webhook does
    backend.jobs.wait_idle("1", timeout_s=300)
    newer = [v for v in store.version_names() if v > first]
    assert len(newer) == 2, newer  # the fine-tuning, then the training from scratch
    metas = [store.at(version).load_meta() for version in newer]
    assert all(metas)
    fine_tuned, retrained = metas
    assert fine_tuned["metrics"]["warm_start"] and not retrained["metrics"]["warm_start"]
    assert store.current_version() == newer[1]
    held_out = held_out_task_ids("1", {task_id: {0, 1} for task_id in range(1, 6)})
    assert sorted([*store.versions()[0]["trained_on"], *held_out]) == [1, 2, 3, 4, 5]
