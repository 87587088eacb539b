"""Reading TimeSeries data as Label Studio does: separators, time axes, inline JSON, gaps and bad files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from utils.service.errors import TaskError
from utils.timeseries.reader import SeriesSpec, channel_columns, read_series
from utils.timeseries.time_axis import TimeAxis


def write(tmp_path: Path, text: str, name: str = "ts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("sep,attr", [(";", ";"), ("\t", "\\t"), ("|", "|")])
def test_reads_the_configured_separator(tmp_path: Path, sep: str, attr: str) -> None:
    path = write(tmp_path, f"time{sep}a{sep}b\n0{sep}1{sep}2\n1{sep}3{sep}4\n")
    series = read_series(path, SeriesSpec(time_column="time", sep=attr, channels=("a", "b")))
    assert series.values.tolist() == [[1, 2], [3, 4]]
    assert series.times.tolist() == [0, 1]


def test_date_time_axis_parses_to_epoch_ms_and_formats_back(tmp_path: Path) -> None:
    path = write(tmp_path, "when,v\n2024-01-02 03:04:05,1\n2024-01-02 03:04:06,2\n")
    spec = SeriesSpec(time_column="when", time_format="%Y-%m-%d %H:%M:%S", channels=("v",))
    series = read_series(path, spec)
    assert series.times[1] - series.times[0] == 1000.0
    assert spec.axis.format_value(series.times[1]) == "2024-01-02 03:04:06"
    assert spec.axis.parse_value("2024-01-02 03:04:06") == series.times[1]


def test_d3_millisecond_directive_round_trips() -> None:
    axis = TimeAxis("%Y-%m-%dT%H:%M:%S.%L")
    value = axis.parse_value("2024-01-02T03:04:05.250")
    assert axis.format_value(value) == "2024-01-02T03:04:05.250"


def test_epoch_ms_column_without_time_format_stays_numeric(tmp_path: Path) -> None:
    # Label Studio's sample-task-sin.csv: epoch milliseconds, no timeFormat -> numbers in and out
    path = write(tmp_path, "time,sensor\n1581983000000,0.1\n1581983000100,0.2\n")
    spec = SeriesSpec(time_column="time", channels=("sensor",))
    series = read_series(path, spec)
    assert spec.axis.format_value(series.times[1]) == 1581983000100


def test_epoch_ms_time_format_q(tmp_path: Path) -> None:
    path = write(tmp_path, "t,v\n1581983000000,1\n1581983000500,2\n")
    spec = SeriesSpec(time_column="t", time_format="%Q", channels=("v",))
    series = read_series(path, spec)
    assert spec.axis.format_value(series.times[1]) == 1581983000500
    assert not spec.axis.is_date


def test_without_time_column_the_axis_is_the_row_index(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n5,6\n7,8\n9,10\n")
    series = read_series(path, SeriesSpec(time_format="%Y"))
    assert series.times.tolist() == [0, 1, 2]
    assert series.channels == ("a", "b")


def test_inline_json_columns_and_rows() -> None:
    spec = SeriesSpec(value_type="json", time_column="time", channels=("x",))
    columns = read_series({"time": [0, 0.5, 1.0], "x": [1, 2, 3]}, spec)
    rows = read_series([{"time": 0, "x": 1}, {"time": 0.5, "x": 2}], spec)
    assert columns.values[:, 0].tolist() == [1, 2, 3]
    assert rows.times.tolist() == [0, 0.5]


def test_missing_values_are_interpolated(tmp_path: Path) -> None:
    path = write(tmp_path, "time,v\n0,\n1,2\n2,NaN\n3,4\n4,\n")
    series = read_series(path, SeriesSpec(time_column="time", channels=("v",)))
    assert series.values[:, 0].tolist() == [2, 2, 3, 4, 4]
    assert np.isfinite(series.values).all()


def test_channels_are_found_inside_multichannel() -> None:
    xml = ET.fromstring(
        '<TimeSeries><MultiChannel><Channel column="a"/><Channel column="b"/></MultiChannel>'
        '<Channel column="c"/></TimeSeries>'
    )
    assert channel_columns(list(xml)) == ("a", "b", "c")


def test_column_names_match_case_insensitively(tmp_path: Path) -> None:
    path = write(tmp_path, "Time,Value\n0,1\n1,2\n")
    series = read_series(path, SeriesSpec(time_column="time", channels=("value",)))
    assert series.values[:, 0].tolist() == [1, 2]


def test_unsorted_time_axis_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, "time,v\n0,1\n2,1\n1,1\n")
    with pytest.raises(TaskError, match="not sorted: row 3"):
        read_series(path, SeriesSpec(time_column="time", channels=("v",)))


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "time,v\n0,1\n")
    with pytest.raises(TaskError, match="'speed'"):
        read_series(path, SeriesSpec(time_column="time", channels=("speed",)))


def test_unparsable_time_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, "time,v\n2024-01-01,1\nyesterday,2\n")
    with pytest.raises(TaskError, match="row 2 value 'yesterday'"):
        read_series(path, SeriesSpec(time_column="time", time_format="%Y-%m-%d", channels=("v",)))


def test_unreadable_file_is_a_task_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"")
    with pytest.raises(TaskError, match="not a readable CSV"):
        read_series(path, SeriesSpec(channels=("v",)))


def test_row_cap_and_size_cap(tmp_path: Path) -> None:
    path = write(tmp_path, "v\n" + "1\n" * 20)
    with pytest.raises(TaskError, match="more than 10 rows"):
        read_series(path, SeriesSpec(channels=("v",), max_rows=10))
    with pytest.raises(TaskError, match="bytes"):
        read_series(path, SeriesSpec(channels=("v",), max_bytes=10))


def test_values_beyond_float32_are_an_error_naming_file_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "time,a,b\n0,1,2\n1,1e308,4\n", name="huge.csv")
    with pytest.raises(TaskError, match=r"huge\.csv column 'a' row 2 .*float32"):
        read_series(path, SeriesSpec(time_column="time"), task_id=7)


def test_inline_json_values_beyond_float32_name_the_column() -> None:
    with pytest.raises(TaskError, match=r"inline JSON column 'v' .*float32"):
        read_series({"v": [1.0, -3e39]}, SeriesSpec(value_type="json"))


def test_values_at_the_float32_limit_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n3.4e38\n-3.4e38\n")
    assert np.isfinite(read_series(path, SeriesSpec()).values).all()
