"""Peak memory (RSS) while encoding a long 720p video: frames stream in batches, so memory stays flat.

Generates a synthetic 1280x720 video (moving shapes, mp4v) of `--minutes` into a temp dir, then encodes it
with the frame encoder and reports peak RSS during encoding next to the RSS before it. Generating and
encoding 10 minutes takes a long while on 2 cores; `--minutes 1` gives the same picture faster.

Run: .venv/bin/python -m bench.bench_timeline_memory [--minutes 10] [--step 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from fixtures.yolo_checkpoint import build_checkpoint  # noqa: E402
from utils.video.encoder import YoloFrameEncoder  # noqa: E402
from utils.video.features import encode_video  # noqa: E402

FPS = 25
SIZE = (1280, 720)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long720p.mp4"
        started = time.perf_counter()
        frames = generate(video, args.minutes)
        print(
            f"generated {frames} frames of 1280x720 in {time.perf_counter() - started:.0f} s "
            f"({video.stat().st_size / 1e6:.0f} MB)"
        )
        encoder = YoloFrameEncoder(build_checkpoint(Path(tmp) / "m.pt"), threads=args.threads)
        before = rss_bytes()
        with PeakRss() as peak:
            started = time.perf_counter()
            result = encode_video(video, encoder, step=args.step)
            seconds = time.perf_counter() - started
    mib = 1024**2
    print(
        f"encoded {result.frame_count} frames (step {args.step}) in {seconds:.0f} s "
        f"({result.frame_count / seconds:.0f} frames/s)"
    )
    print(
        f"RSS before encoding {before / mib:.0f} MiB, peak during encoding {peak.peak / mib:.0f} MiB "
        f"(+{(peak.peak - before) / mib:.0f} MiB; the features themselves are "
        f"{(result.features.nbytes + result.probs.nbytes) / mib:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
