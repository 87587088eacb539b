"""Regions <-> per-sample targets: inclusive ranges by time with tolerance, instants, overlaps, round trips."""

from __future__ import annotations

import numpy as np

from utils.temporal.decoder import Segment
from utils.timeseries.regions import regions_to_targets, segment_value
from utils.timeseries.time_axis import TimeAxis

LABELS = ["Run", "Walk"]
KEY = "timeserieslabels"


def region(start: object, end: object, *labels: str, instant: bool = False) -> dict:
    return {"value": {"start": start, "end": end, "instant": instant, KEY: list(labels)}}


def test_range_is_inclusive_and_matched_within_half_a_sample() -> None:
    times = np.round(np.arange(0, 1.0, 0.1), 10)  # float steps: 0.30000000000000004 and the like
    found = regions_to_targets([region(0.3, 0.6000001, "Run")], times, LABELS, TimeAxis(), KEY)
    assert np.flatnonzero(found.targets[:, 0]).tolist() == [3, 4, 5, 6]
    off_grid = regions_to_targets([region(0.27, 0.64, "Run")], times, LABELS, TimeAxis(), KEY)
    assert np.flatnonzero(off_grid.targets[:, 0]).tolist() == [3, 4, 5, 6]


def test_instant_maps_to_the_nearest_sample() -> None:
    times = np.arange(10, dtype=float)
    found = regions_to_targets([region(4.4, 4.4, "Walk", instant=True)], times, LABELS, TimeAxis(), KEY)
    assert np.flatnonzero(found.targets[:, 1]).tolist() == [4]
    assert found.instants == {1: 1}


def test_overlapping_and_multi_label_regions_are_multi_hot() -> None:
    times = np.arange(10, dtype=float)
    regions = [region(0, 5, "Run", "Walk"), region(3, 8, "Walk")]
    targets = regions_to_targets(regions, times, LABELS, TimeAxis(), KEY).targets
    assert targets[:, 0].tolist() == [1] * 6 + [0] * 4
    assert targets[:, 1].tolist() == [1] * 9 + [0]


def test_unknown_labels_and_foreign_regions_are_skipped() -> None:
    times = np.arange(5, dtype=float)
    timeline_item = {"value": {"ranges": [{"start": 1, "end": 3}], "timelinelabels": ["Run"]}}
    found = regions_to_targets([region(0, 2, "Swim"), timeline_item], times, LABELS, TimeAxis(), KEY)
    assert not found.targets.any()
    assert found.skipped == 2


def test_segment_value_round_trips_on_a_date_time_axis() -> None:
    axis = TimeAxis("%Y-%m-%d %H:%M:%S")
    times = axis.parse_column(__import__("pandas").Series([f"2024-05-01 10:00:{s:02d}" for s in range(10)]))
    value = segment_value(Segment(0, 2, 5, 0.9), times, LABELS, axis, KEY)
    assert value == {
        "start": "2024-05-01 10:00:02",
        "end": "2024-05-01 10:00:05",
        "instant": False,
        KEY: ["Run"],
    }
    back = regions_to_targets([{"value": value}], times, LABELS, axis, KEY).targets
    assert np.flatnonzero(back[:, 0]).tolist() == [2, 3, 4, 5]


def test_one_sample_segment_is_an_instant() -> None:
    times = np.arange(5, dtype=float) * 0.5
    value = segment_value(Segment(1, 3, 3, 0.7), times, LABELS, TimeAxis(), KEY)
    assert value == {"start": 1.5, "end": 1.5, "instant": True, KEY: ["Walk"]}


def test_instant_outside_the_series_is_skipped_not_clamped() -> None:
    times = np.array([0.0, 1.0, 2.0, 3.0])
    region = {"value": {"start": 100.0, "end": 100.0, "instant": True, "timeserieslabels": ["Peak"]}}
    result = regions_to_targets([region], times, ["Peak"], TimeAxis(), "timeserieslabels")
    assert result.targets.sum() == 0 and result.skipped == 1
