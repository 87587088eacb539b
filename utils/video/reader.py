"""Reading video files with OpenCV: metadata up front, frames streamed in bounded batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.service.errors import TaskError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video; `frame_count` is OpenCV's estimate until decoded."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int


def probe_video(path: Path) -> VideoInfo:
    """Metadata of a readable video, or TaskError saying why it cannot be used."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise TaskError(f"video {path.name}: OpenCV cannot open it (not a video or unsupported codec)")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        info = VideoInfo(
            path=path,
            fps=fps if np.isfinite(fps) and fps > 0 else 0.0,
            frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        capture.release()
    if info.fps <= 0:
        raise TaskError(f"video {path.name}: no usable frame rate in the container")
    return info


class FrameBatches:
    """Iterates `(decoded frame indices, BGR frames)` for every `step`-th frame, `batch_size` at a time.

    Skipped frames are only grabbed, never converted to images, and at most one batch is held in memory,
    so long videos stream in constant memory. After iteration `decoded_count` holds the video's real
    frame count (the container's estimate can be wrong).
    """

    def __init__(self, path: Path, batch_size: int = 16, step: int = 1):
        if batch_size < 1 or step < 1:
            raise ValueError("batch_size and step must be >= 1")
        self.path = path
        self.batch_size = batch_size
        self.step = step
        self.decoded_count = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise TaskError(f"video {self.path.name}: OpenCV cannot open it")
        indices: list[int] = []
        frames: list[np.ndarray] = []
        index = 0
        try:
            while True:
                if index % self.step == 0:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    indices.append(index)
                    frames.append(frame)
                    if len(frames) == self.batch_size:
                        yield np.asarray(indices), frames
                        indices, frames = [], []
                elif not capture.grab():
                    break
                index += 1
        finally:
            capture.release()
            self.decoded_count = index
        if frames:
            yield np.asarray(indices), frames
