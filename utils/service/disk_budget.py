"""Keeping a cache directory within a byte budget: the least recently used files go first (readers mark a
file used by touching its mtime)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def touch(path: Path) -> None:
    """Mark `path` as just used, so it is evicted last; a file evicted meanwhile is no error."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def evict_least_recently_used(directory: Path, pattern: str, max_bytes: int, keep: Path) -> list[Path]:
    """Delete the oldest-used files matching `pattern` until the rest fit in `max_bytes`; `keep` (the entry
    just written) always stays. Returns what was deleted."""
    entries = []
    for path in directory.glob(pattern):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    evicted = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= max_bytes:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size
            evicted.append(path)
    return evicted
