"""Long videos made on the spot with OpenCV, for tests and benchmarks of long media (nothing to download)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, minutes: float, fps: float, width: int, height: int) -> int:
    """An mp4 whose brightness steps every second, so frames differ; returns its frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    frames = round(minutes * 60 * fps)
    frame = np.zeros((height, width, 3), np.uint8)
    try:
        for index in range(frames):
            frame[:] = (index // round(fps) * 37) % 256
            writer.write(frame)
    finally:
        writer.release()
    return frames
