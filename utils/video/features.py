"""Per-frame features of a whole video: streamed through the encoder, optionally every k-th frame, and
streamed into the cache's row file, from which predictions read them back range by range."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from utils.service.errors import TaskError
from utils.video.encoder import EncodedFrames, file_digest
from utils.video.feature_cache import FeatureCache, cache_key
from utils.video.frame_rows import Rows, RowWriter, StoredFrames, nearest_encoded
from utils.video.reader import FrameBatches, probe_video

logger = logging.getLogger(__name__)

ENCODING_STRIPES = 64  # locks that keep two threads from encoding one video at once


class FrameEncoder(Protocol):
    cache_id: str

    def prepare(self, frames_bgr: list[np.ndarray]) -> np.ndarray: ...

    def forward_stream(self, prepared: Iterable[np.ndarray]) -> Iterator[EncodedFrames]: ...


@dataclass(frozen=True)
class VideoFeatures:
    """Features (N, D) and class probabilities (N, C) for each of the N decoded frames: arrays, or rows read
    from the cache's row file as they are needed."""

    features: np.ndarray | Rows
    probs: np.ndarray | Rows
    fps: float

    @property
    def frame_count(self) -> int:
        return len(self.features)


def expand_steps(encoded: np.ndarray, step: int, frame_count: int) -> np.ndarray:
    """Rows for every frame from rows of every `step`-th frame: each frame takes its nearest encoded one."""
    if step == 1 and len(encoded) == frame_count:
        return encoded  # nothing to expand; a copy would double peak memory on long videos
    return encoded[nearest_encoded(step, frame_count, len(encoded))]


def _prepared_batches(batches: FrameBatches, encoder: FrameEncoder) -> Iterator[np.ndarray]:
    """Decode and preprocess in a reader thread, at most two batches ahead, while the caller runs the
    network: OpenCV and PIL release the GIL, so reading overlaps inference in bounded memory."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for _, frames in batches:
                if stop.is_set():
                    return
                handoff.put(encoder.prepare(frames))
            handoff.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            handoff.put(exc)

    reader = threading.Thread(target=read, name="video-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        reader.join()


_DONE = object()

Progress = Callable[[int, int], None]  # (frames done, frames in the video), called after each batch


def _encode(
    path: Path,
    encoder: FrameEncoder,
    step: int,
    batch_size: int,
    progress: Progress | None,
    sink: Callable[[EncodedFrames], None],
) -> tuple[float, int]:
    """Encode every `step`-th frame of a video into `sink`, batch by batch; returns the video's frame rate
    and how many frames were decoded."""
    info = probe_video(path)
    batches = FrameBatches(path, batch_size=batch_size, step=step)
    encoded_rows = 0
    for encoded in encoder.forward_stream(_prepared_batches(batches, encoder)):
        sink(encoded)
        encoded_rows += len(encoded.features)
        if progress is not None:
            progress(min(encoded_rows * step, info.frame_count), info.frame_count)
    if not encoded_rows:
        raise TaskError(f"video {path.name}: no decodable frames")
    return info.fps, batches.decoded_count


def encode_video(
    path: Path, encoder: FrameEncoder, step: int = 1, batch_size: int = 32, progress: Progress | None = None
) -> VideoFeatures:
    """Encode every `step`-th frame of a video into arrays and map the rows back to every frame (short
    clips, tests and benchmarks; the service streams into the cache, see `FeatureExtractor`)."""
    encoded: list[EncodedFrames] = []
    fps, decoded = _encode(path, encoder, step, batch_size, progress, encoded.append)
    features = np.concatenate([e.features for e in encoded])
    probs = np.concatenate([e.probs for e in encoded])
    return VideoFeatures(
        features=expand_steps(features, step, decoded), probs=expand_steps(probs, step, decoded), fps=fps
    )


class FeatureExtractor:
    """Video features through a cache keyed by file content, encoder, preprocessing and frame step."""

    def __init__(self, encoder: FrameEncoder, cache: FeatureCache):
        self.encoder = encoder
        self.cache = cache
        self._digests: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        # one encoding of a video at a time: a training that needs a video a job is encoding waits for it
        # (different videos share a stripe rarely, and then only take turns)
        self._encoding = [threading.Lock() for _ in range(ENCODING_STRIPES)]

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        identity = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._digests.get(identity)
        if known is None:  # hash outside the lock: a large file must not stall other requests
            known = file_digest(path)
            with self._lock:
                self._digests[identity] = known
        return known

    def is_cached(self, path: Path, step: int = 1) -> bool:
        """Whether `features(path, step)` would be answered from the cache, without encoding."""
        try:
            key = cache_key(self._digest(path), self.encoder.cache_id, f"step{step}")
        except OSError:
            return False
        return self.cache.open(key, check_values=False) is not None

    def features(self, path: Path, step: int = 1, progress: Progress | None = None) -> VideoFeatures:
        """The video's rows from the cache, encoding it first (streamed into the cache) when missing."""
        try:
            key = cache_key(self._digest(path), self.encoder.cache_id, f"step{step}")
        except OSError as exc:
            raise TaskError(f"video {path.name}: cannot read it: {exc}") from exc
        stored = self.cache.open(key)
        if stored is None:
            with self._encoding[int(key[:8], 16) % ENCODING_STRIPES]:
                stored = self.cache.open(key)  # encoded meanwhile by the thread that held the lock
                if stored is None:
                    stored = self._encode_into_cache(key, path, step, progress)
        return VideoFeatures(stored.features, stored.probs, stored.fps)

    def _encode_into_cache(self, key: str, path: Path, step: int, progress: Progress | None) -> StoredFrames:
        started = time.perf_counter()

        def fill(writer: RowWriter) -> None:
            fps, decoded = _encode(
                path, self.encoder, step, 32, progress, lambda e: writer.append(e.features, e.probs)
            )
            writer.finish(fps, step, decoded)

        self.cache.write(key, fill)
        stored = self.cache.open(key, check_values=False)
        if stored is None:
            raise TaskError(f"video {path.name}: its features could not be stored in the cache")
        logger.info(
            "encoded %s: %d frames (step %d) in %.1f s",
            path.name,
            stored.frame_count,
            step,
            time.perf_counter() - started,
        )
        return stored
