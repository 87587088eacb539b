"""TimeSeriesLabels regions <-> per-sample label matrices (pure functions, tested by round trip).

A range covers every sample within half a sample period of `[start, end]` (ends inclusive, no exact float
equality needed); an instant (`start == end` or `instant: true`) marks the nearest sample. A region may
carry several labels and regions may overlap, so targets are multi-hot (n, labels); samples with no label
are background.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utils.temporal.decoder import Segment
from utils.timeseries.time_axis import TimeAxis

logger = logging.getLogger(__name__)


@dataclass
class RegionTargets:
    """Multi-hot targets of one sequence, plus what the regions looked like (for decoding defaults)."""

    targets: np.ndarray  # (n, labels) uint8
    range_lengths: dict[int, list[int]] = field(default_factory=dict)  # label -> lengths in samples
    instants: dict[int, int] = field(default_factory=dict)  # label -> count of instant regions
    skipped: int = 0


def sample_period(times: np.ndarray) -> float:
    """Median spacing of the samples (0 for a single sample)."""
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 0.0


def regions_to_targets(
    regions: Iterable[dict[str, Any]], times: np.ndarray, labels: list[str], axis: TimeAxis, value_key: str
) -> RegionTargets:
    """Mark each region's labels on the samples it covers; unknown labels and bad bounds are skipped."""
    index = {label: i for i, label in enumerate(labels)}
    result = RegionTargets(targets=np.zeros((len(times), len(labels)), dtype=np.uint8))
    tolerance = 0.4999 * sample_period(times)
    for region in regions:
        value = region.get("value") or {}
        names = [index[n] for n in value.get(value_key) or [] if n in index]
        try:
            start, end = sorted((axis.parse_value(value["start"]), axis.parse_value(value["end"])))
        except (KeyError, ValueError) as exc:
            logger.warning("skipping a region with unusable bounds: %s", exc)
            result.skipped += 1
            continue
        if not names:
            result.skipped += 1
            continue
        if value.get("instant") or start == end:
            nearest = _nearest(times, start)
            inside = abs(times[nearest] - start) <= max(tolerance, 1e-9)  # not an instant past either end
            covered = slice(nearest, nearest + 1) if inside else slice(0, 0)
        else:
            first = int(np.searchsorted(times, start - tolerance, side="left"))
            last = int(np.searchsorted(times, end + tolerance, side="right"))
            covered = slice(first, last)
        if covered.stop <= covered.start:
            result.skipped += 1
            continue
        for label in names:
            result.targets[covered, label] = 1
            if covered.stop - covered.start == 1 and (value.get("instant") or start == end):
                result.instants[label] = result.instants.get(label, 0) + 1
            else:
                result.range_lengths.setdefault(label, []).append(covered.stop - covered.start)
    return result


def _nearest(times: np.ndarray, t: float) -> int:
    right = int(np.clip(np.searchsorted(times, t), 0, len(times) - 1))
    left = max(0, right - 1)
    return left if abs(times[left] - t) <= abs(times[right] - t) else right


def segment_value(
    segment: Segment, times: np.ndarray, labels: list[str], axis: TimeAxis, value_key: str
) -> dict[str, Any]:
    """A prediction's `value`: bounds in the time column's own units, `instant` for one-sample segments."""
    instant = segment.start == segment.end
    return {
        "start": axis.format_value(float(times[segment.start])),
        "end": axis.format_value(float(times[segment.end])),
        "instant": instant,
        value_key: [labels[segment.label]],
    }
