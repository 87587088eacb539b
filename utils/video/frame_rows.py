"""Per-frame rows on disk: written batch by batch while a video encodes and read back by row ranges, so the
features of an hour of video (about 5 KB a frame) never sit in memory whole.

A row file is a JSON header padded to HEADER_BYTES, then each array's rows one after the other (features
float32, exactly as encoded; class probabilities float16, which only simple mode reads, as scores). It holds
the encoded rows (every `step`-th frame); readers map every decoded frame to its nearest encoded row.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "frame-rows/1"
HEADER_BYTES = 4096
STORED_DTYPES = {"features": np.dtype(np.float32), "probs": np.dtype(np.float16)}
CHUNK_ROWS = 4096  # rows read at once when a whole array is scanned


def nearest_encoded(step: int, frame_count: int, encoded_rows: int) -> np.ndarray:
    """The encoded row of each decoded frame: every `step`-th frame was encoded, each frame takes the nearest."""
    nearest = np.floor(np.arange(frame_count) / step + 0.5).astype(np.int64)
    return np.minimum(nearest, encoded_rows - 1)


class _OpenFile:
    """A read-only descriptor shared by the views of one row file: reads stay valid if the cache evicts it."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        os.close(self.fd)


class Rows:
    """A lazy (len(index), cols) float32 array: row i is row `index[i]` of the array stored at `offset` in a
    row file. Slices are read from disk (thread-safe, by position); `take` composes indices without reading."""

    def __init__(self, file: _OpenFile, offset: int, dtype: np.dtype, cols: int, index: np.ndarray):
        self.file, self.offset, self.dtype, self.cols, self.index = file, offset, dtype, cols, index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), self.cols)

    def take(self, index: np.ndarray) -> Rows:
        return Rows(self.file, self.offset, self.dtype, self.cols, self.index[index])

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("rows are read by slice; take() picks rows")
        picked = self.index[key]
        if not len(picked):
            return np.zeros((0, self.cols), dtype=np.float32)
        low, high = int(picked.min()), int(picked.max()) + 1
        row_bytes = self.cols * self.dtype.itemsize
        data = os.pread(self.file.fd, (high - low) * row_bytes, self.offset + low * row_bytes)
        if len(data) != (high - low) * row_bytes:
            raise OSError(f"row file ends early: {len(data)} of {(high - low) * row_bytes} bytes read")
        stored = np.frombuffer(data, dtype=self.dtype).reshape(high - low, self.cols)
        return stored[picked - low].astype(np.float32)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        for start in range(0, len(self), rows):
            yield self[start : start + rows]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


@dataclass(frozen=True)
class StoredFrames:
    """A row file opened for reading: features and class probabilities of every decoded frame."""

    features: Rows
    probs: Rows
    fps: float

    @property
    def frame_count(self) -> int:
        return len(self.features)

    @classmethod
    def open(cls, path: Path) -> StoredFrames:
        """Reads the header and checks the file holds every row it declares; ValueError when it does not."""
        with open(path, "rb") as handle:
            header = json.loads(handle.read(HEADER_BYTES).rstrip(b"\0 "))
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}")
        rows, step, frame_count = int(header["rows"]), int(header["step"]), int(header["frame_count"])
        if rows <= 0 or step <= 0 or frame_count <= 0:
            raise ValueError("no rows")
        index = nearest_encoded(step, frame_count, rows)
        file = _OpenFile(path)
        arrays, offset = {}, HEADER_BYTES
        for name, dtype in STORED_DTYPES.items():
            cols = int(header["cols"][name])
            arrays[name] = Rows(file, offset, dtype, cols, index)
            offset += rows * cols * dtype.itemsize
        size = os.fstat(file.fd).st_size
        if size != offset:
            raise ValueError(f"{size} bytes where the header declares {offset}")
        return cls(arrays["features"], arrays["probs"], float(header["fps"]))

    def all_finite(self) -> bool:
        return all(
            np.isfinite(chunk).all() for rows in (self.features, self.probs) for chunk in rows.chunks()
        )


class RowWriter:
    """Writes a row file at `path` (a temporary name: the caller renames it when done) batch by batch:
    features go straight into it, probabilities into a spool file appended at the end; `finish` writes the
    header and syncs the file."""

    def __init__(self, path: Path):
        self.path = path
        self._spool = path.with_name(path.name + ".probs")
        self._main = open(path, "wb")  # noqa: SIM115 - closed by finish() or discard()
        self._main.seek(HEADER_BYTES)
        self._probs = open(self._spool, "wb")  # noqa: SIM115 - closed by finish() or discard()
        self.rows = 0
        self._cols: dict[str, int] = {}

    def append(self, features: np.ndarray, probs: np.ndarray) -> None:
        for name, array, handle in (("features", features, self._main), ("probs", probs, self._probs)):
            if self._cols.setdefault(name, array.shape[1]) != array.shape[1]:
                raise ValueError(f"{name}: {array.shape[1]} columns after {self._cols[name]}")
            handle.write(np.ascontiguousarray(array, dtype=STORED_DTYPES[name]).tobytes())
        self.rows += len(features)

    def finish(self, fps: float, step: int, frame_count: int) -> None:
        self._probs.close()
        with open(self._spool, "rb") as probs:
            shutil.copyfileobj(probs, self._main, 1 << 20)
        header = {
            "format": FORMAT,
            "rows": self.rows,
            "step": step,
            "frame_count": frame_count,
            "fps": fps,
            "cols": self._cols,
        }
        encoded = json.dumps(header).encode()
        if len(encoded) > HEADER_BYTES:
            raise ValueError("header too long")
        self._main.seek(0)
        self._main.write(encoded.ljust(HEADER_BYTES, b" "))
        self._main.flush()
        os.fsync(self._main.fileno())
        self._main.close()
        self._spool.unlink(missing_ok=True)

    def discard(self) -> None:
        for handle in (self._main, self._probs):
            handle.close()
        self._spool.unlink(missing_ok=True)
