"""Frames are prepared for the encoder in several threads, yet arrive in order, errors reach the caller, and
stopping early leaves no thread behind."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fixtures.timeline import SPLICED
from utils.video.features import _prepared_batches
from utils.video.reader import FrameBatches

VIDEO = SPLICED / "spliced_train0.mp4"


class FirstPixels:
    """Prepares a batch as its frames' first pixels, slowly for early batches, so later ones finish first."""

    def __init__(self, fail_at: int | None = None):
        self.calls = 0
        self.fail_at = fail_at
        self.lock = threading.Lock()

    def prepare(self, frames: list[np.ndarray]) -> np.ndarray:
        with self.lock:
            call = self.calls
            self.calls += 1
        if call == self.fail_at:
            raise ValueError("broken frame")
        time.sleep(0.02 if call % 2 == 0 else 0.0)
        return np.stack([frame[0, 0] for frame in frames])


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("video-reader", "video-prepare"))]


def test_prepared_batches_arrive_in_decoding_order() -> None:
    want = [np.stack([f[0, 0] for f in frames]) for _, frames in FrameBatches(VIDEO, batch_size=4, step=5)]
    got = list(_prepared_batches(FrameBatches(VIDEO, batch_size=4, step=5), FirstPixels()))
    assert len(got) == len(want) > 4
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not _worker_threads()


def test_a_failing_preparation_reaches_the_caller_and_stops_the_threads() -> None:
    with pytest.raises(ValueError, match="broken frame"):
        list(_prepared_batches(FrameBatches(VIDEO, batch_size=4, step=5), FirstPixels(fail_at=2)))
    assert not _worker_threads()


def test_stopping_early_leaves_no_thread_behind() -> None:
    batches = _prepared_batches(FrameBatches(VIDEO, batch_size=4, step=5), FirstPixels())
    next(batches)
    batches.close()
    assert not _worker_threads()
