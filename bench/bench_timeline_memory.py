"""Peak memory (RSS) of predicting a long video the way the service does: frames stream through the encoder
into the feature cache's row file, then simple mode (class probabilities) and a temporal net (features) read
it back range by range. Memory stays flat however long the video: run it at two lengths and compare.

Generates a synthetic video (moving shapes, mp4v; 640x360 at 25 fps by default) of `--minutes` into a temp dir.
`--in-memory` also runs the old way in the same process for comparison: `encode_video` into arrays, then the same
two predictions on them (peak memory then grows with the video: about 5 KB of features and 4 KB of class
probabilities a frame). Generating and encoding take a while on 2 cores: `--minutes 2` gives the picture.

Run: .venv/bin/python -m bench.bench_timeline_memory [--minutes 10] [--step 1] [--in-memory]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fixtures.yolo_checkpoint import build_checkpoint  # noqa: E402
from utils.temporal.timeline_net import TimelineNet, TimelineNetConfig, predict_proba  # noqa: E402
from utils.video.encoder import YoloFrameEncoder  # noqa: E402
from utils.video.feature_cache import FeatureCache  # noqa: E402
from utils.video.features import FeatureExtractor, VideoFeatures, encode_video  # noqa: E402
from utils.video.frame_rows import Rows  # noqa: E402

FPS = 25
SIZE = (640, 360)
CLASS_IDS = [[0], [1, 2]]  # a simple-mode class map: each label's checkpoint classes


def generate(path: Path, minutes: float) -> int:
    """Write the video frame by frame (never held in memory); returns the frame count."""
    frames = int(minutes * 60 * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    canvas = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
    for i in range(frames):
        canvas[:] = (i // FPS * 37 % 256, 80, 160)
        x = (i * 7) % (SIZE[0] - 200)
        canvas[200:400, x : x + 200] = (255, 255 - i % 256, 0)
        writer.write(canvas)
    writer.release()
    return frames


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples RSS every 50 ms in a thread; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def predict_both_ways(video: VideoFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Simple mode's label probabilities and a temporal net's, as `TimelineLabelsModel.predict_regions`
    computes them (chunks of rows when they are read from disk)."""
    probs = video.probs
    chunks = probs.chunks() if isinstance(probs, Rows) else [probs]
    simple = np.concatenate([np.stack([c[:, ids].max(1) for ids in CLASS_IDS], axis=1) for c in chunks])
    torch.manual_seed(0)
    net = TimelineNet(TimelineNetConfig(in_channels=video.features.shape[1], n_outputs=2))
    return simple, predict_proba(net, video.features, sequence_size=16)


def measure(what: str, run: Callable[[], None]) -> tuple[float, float]:
    """Seconds and peak RSS growth (MiB) of `run()`."""
    before = rss_bytes()
    with PeakRss() as peak:
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    grown = (peak.peak - before) / 1024**2
    print(f"{what}: {seconds:.0f} s, RSS before {before / 1024**2:.0f} MiB, peak +{grown:.0f} MiB")
    return seconds, grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--in-memory", action="store_true", help="also run the old in-memory path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video_path = Path(tmp) / "long.mp4"
        started = time.perf_counter()
        frames = generate(video_path, args.minutes)
        print(
            f"generated {frames} frames of {SIZE[0]}x{SIZE[1]} in {time.perf_counter() - started:.0f} s "
            f"({video_path.stat().st_size / 1e6:.0f} MB)"
        )
        encoder = YoloFrameEncoder(build_checkpoint(Path(tmp) / "m.pt"), threads=args.threads)
        generate(Path(tmp) / "warm-up.mp4", 2 / 60)
        encode_video(Path(tmp) / "warm-up.mp4", encoder)  # the encoder's one-time allocations, not measured
        extractor = FeatureExtractor(encoder, FeatureCache(Path(tmp) / "features", 1 << 40))
        results: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def streamed() -> None:
            video = extractor.features(video_path, step=args.step)
            results["streamed"] = predict_both_ways(video)

        seconds, _ = measure("streamed into the cache, predicted from disk", streamed)
        print(
            f"  {frames / seconds:.0f} frames/s; row file {sum(f.stat().st_size for f in (Path(tmp) / 'features').iterdir()) / 1e6:.0f} MB"
        )
        if args.in_memory:

            def in_memory() -> None:
                video = encode_video(video_path, encoder, step=args.step)
                results["in memory"] = predict_both_ways(video)

            measure("in memory (encode_video arrays)", in_memory)
            for name, want, got in zip(
                ("simple mode", "temporal net"), results["in memory"], results["streamed"], strict=True
            ):
                print(f"  {name}: largest difference streamed vs in memory {np.abs(want - got).max():.2e}")


if __name__ == "__main__":
    main()
