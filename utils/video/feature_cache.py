"""A bounded on-disk cache of per-frame features, keyed by what determines them.

Entries are compressed npz files (float16 scaled per array, so tiny feature scales survive) written
atomically; a missing, partial or corrupt entry reads as a miss and is deleted, never trusted. When the
cache grows past its byte budget the least recently used entries go first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from utils.service.disk_budget import evict_least_recently_used
from utils.service.files import write_atomic

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUFFIX = ".npz"


def cache_key(*parts: object) -> str:
    """A file name for the entry determined by `parts` (content hash, encoder id, preprocessing, step)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:40]


def _compact(array: np.ndarray) -> tuple[np.ndarray, np.float32]:
    scale = np.float32(np.max(np.abs(array)) if array.size else 1.0) or np.float32(1.0)
    return (array / scale).astype(np.float16), scale


class FeatureCache:
    """Arrays per key under `root`; `max_bytes` bounds the total size on disk."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def get(self, key: str, required: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        """The arrays stored under `key` (float32), or None when absent or unreadable."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format_version"]) != FORMAT_VERSION:
                    raise ValueError(f"format {int(data['format_version'])}")
                arrays = {
                    name: data[name].astype(np.float32) * data[f"{name}__scale"].astype(np.float32)
                    for name in required
                }
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("feature cache entry %s is unreadable (%s); rebuilding it", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        if not all(np.isfinite(a).all() for a in arrays.values()):
            logger.warning("feature cache entry %s holds non-finite values; rebuilding it", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        payload: dict[str, np.ndarray] = {"format_version": np.asarray(FORMAT_VERSION)}
        for name, array in arrays.items():
            payload[name], payload[f"{name}__scale"] = _compact(np.asarray(array, dtype=np.float32))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **payload)

        with self._lock:
            write_atomic(self._path(key), write)
            self._evict(keep=self._path(key))

    def _evict(self, keep: Path) -> None:
        for path in evict_least_recently_used(self.root, f"*{SUFFIX}", self.max_bytes, keep):
            logger.info("feature cache: evicted %s", path.name)
