"""TimelineLabels service timings through the control model: fit on 8 videos with cold and warm
feature caches, a warm-started retrain after one more annotation, predict latency on a 500-frame video
with a cold and a warm cache, and a cold predict of a new 500-frame 640x360 video with the frame encoder on
ONNX Runtime and on PyTorch, against the reference's per-frame predict path timed in the same process.

Run: .venv/bin/python -m bench.bench_timeline_service [--epochs 1000] [--predict-only --epochs 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import cv2  # noqa: E402

from bench.bench_features import baseline_predict, scaled_video  # noqa: E402
from control_models.timeline_labels import TimelineLabelsModel  # noqa: E402
from fixtures.timeline import (  # noqa: E402
    annotated,
    control_of,
    make_context,
    session_dir,
    spliced_checkpoint,
    spliced_labels,
    spliced_tasks,
    timeline_config,
)
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


def cold_predict_ratios(config: str, model_dir: Path, tmp: Path, sources: list[Path], threads: int) -> None:
    """Cold /predict work (decode, features, net, regions) for a new 640x360 video, per frame encoder
    runtime, against the reference's per-frame predict path; best of two runs each, alternating."""
    video = scaled_video(sources[0], session_dir() / "video640x360.mp4", (640, 360))
    seconds: dict[str, float] = {}
    for attempt in range(2):
        _, base_fps, how = baseline_predict(spliced_checkpoint(), video)
        seconds["baseline"] = min(seconds.get("baseline", 1e9), 500 / base_fps)
        for runtime in ("auto", "torch"):
            ctx = make_context(model_dir, cache_dir=tmp / f"cold-{runtime}-{attempt}")
            ctx = dataclasses.replace(
                ctx, settings=dataclasses.replace(ctx.settings, torch_threads=threads, frame_encoder=runtime)
            )
            predictor = TimelineLabelsModel.create(control_of(config), ctx)  # encoder built, not timed
            _, elapsed = timed(
                lambda p=predictor: p.predict_regions({"id": 7, "data": {"video": str(video)}})
            )
            seconds[runtime] = min(seconds.get(runtime, 1e9), elapsed)
    print(f"cold predict of a new 640x360 video, 500 frames, {threads} threads; baseline: {how}")
    print(
        f"  baseline per-frame path: {seconds['baseline']:5.2f} s ({500 / seconds['baseline']:.0f} frames/s)"
    )
    for runtime, name in (("auto", "ONNX Runtime"), ("torch", "PyTorch")):
        print(
            f"  ours, encoder on {name:12s}: {seconds[runtime]:5.2f} s ({500 / seconds[runtime]:.0f} frames/s) "
            f"= {seconds['baseline'] / seconds[runtime]:.2f}x the per-frame path (goal >= 3.5x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1000, help="model_classifier_epochs (reference: 1000)")
    parser.add_argument("--predict-only", action="store_true", help="one fit, then the cold predict ratios")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    spliced_checkpoint()  # built once, not timed
    config = timeline_config(
        spliced_labels(),
        model_trainable="true",
        model_path=spliced_checkpoint().name,
        model_classifier_epochs=str(args.epochs),
    )
    tasks = [annotated(t) for t in spliced_tasks()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ctx = make_context(tmp_path / "models-a", cache_dir=tmp_path / "cache")
        model = TimelineLabelsModel.create(control_of(config), ctx)
        cold, cold_s = timed(lambda: model.fit(tasks))
        sources = [Path(t.data["video"]) for t in tasks[6:]]
        if args.predict_only:
            cold_predict_ratios(config, tmp_path / "models-a", tmp_path, sources, args.threads)
            return
        fresh = TimelineLabelsModel.create(
            control_of(config), make_context(tmp_path / "models-b", tmp_path / "cache")
        )
        warm, warm_s = timed(lambda: fresh.fit(tasks))
        seven = TimelineLabelsModel.create(
            control_of(config), make_context(tmp_path / "models-c", tmp_path / "cache")
        )
        seven.fit(tasks[:7])
        retrain, retrain_s = timed(lambda: seven.fit(tasks))

        video = write_video(session_dir() / "video500.mp4", sources, 500)
        predictor = TimelineLabelsModel.create(
            control_of(config), make_context(tmp_path / "models-a", cache_dir=tmp_path / "cache-predict")
        )
        task = {"id": 99, "data": {"video": str(video)}}
        regions, predict_cold_s = timed(lambda: predictor.predict_regions(task))
        _, predict_warm_s = timed(lambda: predictor.predict_regions(task))

        print(
            f"fit on 8 videos, cold features: {cold_s:6.1f} s  (train {cold['train_seconds']} s, "
            f"{cold['epochs_run']} epochs, validation F1 {cold['validation_f1']})"
        )
        print(f"fit on 8 videos, warm features: {warm_s:6.1f} s  (train {warm['train_seconds']} s)")
        print(
            f"retrain after an 8th annotation (warm start {retrain['warm_start']}): {retrain_s:6.1f} s "
            f"({retrain['epochs_run']} epochs)"
        )
        print(
            f"predict a 500-frame video: cold cache {predict_cold_s:5.2f} s, warm {predict_warm_s:5.3f} s "
            f"({len(regions)} regions)"
        )
        cold_predict_ratios(config, tmp_path / "models-a", tmp_path, sources, args.threads)


if __name__ == "__main__":
    main()
