"""Series read from files, kept while their file is unchanged: one training reads each task for the data
checks, for fitting and for the held-out gate, and the next training (a few seconds later) reads them all
again; a 2,000,000-row CSV takes seconds to parse each time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from utils.timeseries.reader import Series, SeriesSpec, read_series

DEFAULT_MAX_BYTES = 256 * 1024**2


class SeriesCache:
    """Parsed series by file path, size, modification time and spec, least recently used dropped past
    `max_bytes`. The arrays are read-only: every reader shares them."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Series] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, path: Path, spec: SeriesSpec, task_id: int | None = None) -> Series:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        series = read_series(path, spec, task_id)
        for array in (series.times, series.values):
            array.flags.writeable = False
        size = series.times.nbytes + series.values.nbytes
        if size <= self.max_bytes:
            with self._lock:
                if key not in self._items:
                    self._items[key] = series
                    self._bytes += size
                while self._bytes > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._bytes -= dropped.times.nbytes + dropped.values.nbytes
        return series
