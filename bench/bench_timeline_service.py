"""TimelineLabels service timings through the control model: fit on 8 videos with cold and warm
feature caches, a warm-started retrain after one more annotation, and predict latency on a 500-frame video
with a cold and a warm cache.

Run: .venv/bin/python -m bench.bench_timeline_service [--epochs 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402

import fixtures.timeline as material  # noqa: E402
from control_models.timeline_labels import TimelineLabelsModel  # noqa: E402
from utils.video.reader import FrameBatches  # noqa: E402


def write_video(target: Path, sources: list[Path], frames: int, fps: float = 25.0) -> Path:
    """A video of `frames` frames taken from `sources` in turn (their size, mp4v)."""
    writer = None
    written = 0
    while written < frames:
        for source in sources:
            for _, batch in FrameBatches(source, batch_size=32):
                for frame in batch:
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    writer.write(frame)
                    written += 1
                    if written == frames:
                        writer.release()
                        return target
    raise AssertionError("unreachable")


def timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1000, help="model_classifier_epochs (reference: 1000)")
    args = parser.parse_args()
    material.spliced_checkpoint()  # built once, not timed
    config = material.timeline_config(
        material.spliced_labels(),
        model_trainable="true",
        model_path=material.spliced_checkpoint().name,
        model_classifier_epochs=str(args.epochs),
    )
    tasks = [material.annotated(t) for t in material.spliced_tasks()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ctx = material.make_context(tmp_path / "models-a", cache_dir=tmp_path / "cache")
        model = TimelineLabelsModel.create(material.control_of(config), ctx)
        cold, cold_s = timed(lambda: model.fit(tasks))
        fresh = TimelineLabelsModel.create(
            material.control_of(config), material.make_context(tmp_path / "models-b", tmp_path / "cache")
        )
        warm, warm_s = timed(lambda: fresh.fit(tasks))
        seven = TimelineLabelsModel.create(
            material.control_of(config), material.make_context(tmp_path / "models-c", tmp_path / "cache")
        )
        seven.fit(tasks[:7])
        retrain, retrain_s = timed(lambda: seven.fit(tasks))

        video = write_video(
            material.session_dir() / "video500.mp4", [Path(t.data["video"]) for t in tasks[6:]], 500
        )
        predictor = TimelineLabelsModel.create(
            material.control_of(config),
            material.make_context(tmp_path / "models-a", cache_dir=tmp_path / "cache-predict"),
        )
        task = {"id": 99, "data": {"video": str(video)}}
        regions, predict_cold_s = timed(lambda: predictor.predict_regions(task))
        _, predict_warm_s = timed(lambda: predictor.predict_regions(task))

    print(
        f"fit on 8 videos, cold features: {cold_s:6.1f} s  (train {cold['seconds']} s, "
        f"{cold['epochs']} epochs, validation F1 {cold['best']['macro_f1']})"
    )
    print(f"fit on 8 videos, warm features: {warm_s:6.1f} s  (train {warm['seconds']} s)")
    print(
        f"retrain after an 8th annotation (warm start {retrain['warm_start']}): {retrain_s:6.1f} s "
        f"({retrain['epochs']} epochs)"
    )
    print(
        f"predict a 500-frame video: cold cache {predict_cold_s:5.2f} s, warm {predict_warm_s:5.3f} s "
        f"({len(regions)} regions)"
    )


if __name__ == "__main__":
    main()
