"""Label Studio's frame numbers versus decoded frames.

Label Studio numbers video frames from 1 at the `<Video frameRate>` it was given (24 by default), whatever
the file's real rate. Frame n therefore means time (n - 1) / frameRate; we map it to the decoded frame
shown at that time, so annotations stay aligned when the declared and the real rate differ.
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = 24.0
RATE_TOLERANCE = 0.01  # relative; 25 vs 25.0001 is the same rate


def resolve_frame_rate(attribute: str | None, task_data: dict, default: float = DEFAULT_FRAME_RATE) -> float:
    """The `<Video frameRate>` value: a number, or `$field` taken from the task data."""
    if attribute is None or str(attribute).strip() == "":
        return default
    raw: object = attribute
    text = str(attribute).strip()
    if text.startswith("$"):
        raw = task_data.get(text[1:])
        if raw is None or raw == "":
            return default
    try:
        rate = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"frameRate {attribute!r} resolves to {raw!r}, not a number") from None
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"frameRate {attribute!r} resolves to {rate}, expected a positive number")
    return rate


def rates_differ(declared_fps: float, real_fps: float) -> bool:
    return abs(declared_fps - real_fps) > RATE_TOLERANCE * real_fps


def label_studio_frame_count(decoded_frames: int, declared_fps: float, real_fps: float) -> int:
    """How many frames Label Studio's timeline shows for a video of `decoded_frames` frames."""
    if decoded_frames <= 0:
        return 0
    return max(1, round(decoded_frames * declared_fps / real_fps))


def decoded_index_for_ls_frames(
    ls_frames: int, declared_fps: float, real_fps: float, decoded_frames: int
) -> np.ndarray:
    """For Label Studio frames 1..ls_frames, the 0-based decoded frame shown at the same time."""
    times = np.arange(ls_frames, dtype=np.float64) / declared_fps
    # A small epsilon keeps exact frame times (e.g. 1/25 * 25) from rounding down by float error.
    indices = np.floor(times * real_fps + 1e-6).astype(np.int64)
    return np.clip(indices, 0, max(decoded_frames - 1, 0))
