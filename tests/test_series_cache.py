"""SeriesCache: a file is parsed once while it is unchanged, and again once it changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from utils.timeseries.reader import SeriesSpec
from utils.timeseries.series_cache import SeriesCache

SPEC = SeriesSpec(time_column="time", channels=("a",))


def write(path: Path, values: list[float], mtime_ns: int) -> Path:
    path.write_text("time,a\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_an_unchanged_file_is_parsed_once_and_shared_read_only(tmp_path: Path) -> None:
    cache = SeriesCache()
    path = write(tmp_path / "a.csv", [1.0, 2.0], 10**18)
    first = cache.read(path, SPEC)
    assert cache.read(path, SPEC) is first
    with pytest.raises(ValueError):
        first.values[0, 0] = 5.0


def test_a_changed_file_or_spec_is_read_again(tmp_path: Path) -> None:
    cache = SeriesCache()
    path = write(tmp_path / "a.csv", [1.0, 2.0], 10**18)
    cache.read(path, SPEC)
    write(path, [3.0, 4.0], 2 * 10**18)
    assert np.array_equal(cache.read(path, SPEC).values[:, 0], [3.0, 4.0])
    assert cache.read(path, SeriesSpec(channels=("a",))).times.tolist() == [0, 1]  # row index axis


def test_the_byte_bound_drops_the_least_recently_used(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"{i}.csv", [float(i)] * 100, 10**18) for i in range(3)]
    one = SeriesCache().read(paths[0], SPEC)
    cache = SeriesCache(max_bytes=2 * (one.times.nbytes + one.values.nbytes))
    kept = cache.read(paths[0], SPEC)
    cache.read(paths[1], SPEC)
    cache.read(paths[2], SPEC)
    assert cache.read(paths[0], SPEC) is not kept
