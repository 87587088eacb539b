"""A bounded on-disk cache of per-frame features, keyed by what determines them.

Entries are row files (`frame_rows.py`), written while the video encodes and renamed into place when complete;
readers read them by row ranges and never load one whole. A missing, partial or corrupt entry reads as a miss
and is deleted, never trusted. When the cache grows past its byte budget the least recently used entries go
first; a reader that has an entry open keeps reading it after it is evicted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from utils.service.disk_budget import evict_least_recently_used, touch
from utils.video.frame_rows import RowWriter, StoredFrames

logger = logging.getLogger(__name__)

SUFFIX = ".rows"
LEGACY = "*.npz"  # entries of the format before row files: never read again, so removed on the next write


def cache_key(*parts: object) -> str:
    """A file name for the entry determined by `parts` (content hash, encoder id, preprocessing, step)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:40]


class FeatureCache:
    """Row files per key under `root`; `max_bytes` bounds the total size on disk."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def open(self, key: str, check_values: bool = True) -> StoredFrames | None:
        """The entry under `key`, or None when absent or unreadable (then deleted). `check_values` also scans
        it for non-finite numbers; without it only its header and size are checked."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            stored = StoredFrames.open(path)
            if check_values and not stored.all_finite():
                raise ValueError("non-finite values")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("feature cache entry %s is unusable (%s); rebuilding it", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        touch(path)  # recently used: evicted last
        return stored

    def write(self, key: str, fill: Callable[[RowWriter], None]) -> None:
        """Let `fill` write the entry (it calls `finish`), then put it in place; on failure nothing is left."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.root)
        os.close(fd)
        writer = RowWriter(Path(tmp_name))
        try:
            fill(writer)
            os.replace(tmp_name, self._path(key))
        except BaseException:
            writer.discard()
            raise
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        with self._lock:
            for path in self.root.glob(LEGACY):
                path.unlink(missing_ok=True)
                logger.info("feature cache: removed %s (an entry of the old format)", path.name)
            for path in evict_least_recently_used(self.root, f"*{SUFFIX}", self.max_bytes, self._path(key)):
                logger.info("feature cache: evicted %s", path.name)
