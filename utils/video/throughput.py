"""How fast this machine encodes video frames, measured as it goes: /predict uses it to tell whether a
video fits in its time budget before starting on it."""

from __future__ import annotations

import threading

SMOOTHING = 0.3  # weight of the newest measurement in the moving average


class EncodeRate:
    """Encoded frames per second: starts from a configured guess, then follows measured encodings."""

    def __init__(self, initial_fps: float):
        self._fps = max(1e-3, float(initial_fps))
        self._lock = threading.Lock()

    @property
    def fps(self) -> float:
        return self._fps

    def record(self, frames: int, seconds: float) -> None:
        if frames <= 0 or seconds <= 0:
            return
        with self._lock:
            self._fps = (1 - SMOOTHING) * self._fps + SMOOTHING * (frames / seconds)

    def seconds_for(self, frames: int) -> float:
        return frames / self._fps
