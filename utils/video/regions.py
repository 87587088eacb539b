"""Pure converters between TimelineLabels regions and per-frame label arrays (decoded segments included).

Label Studio frames are 1-based and ranges are end inclusive; arrays here are 0-based (frame n is row
n - 1). A region may hold several ranges, and a frame may carry several labels.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from utils.temporal.decoder import Segment

logger = logging.getLogger(__name__)

REGION_TYPE = "timelinelabels"


def control_regions(regions: list[dict[str, Any]], from_name: str) -> list[dict[str, Any]]:
    """Only the TimelineLabels regions of one control."""
    return [
        r
        for r in regions
        if r.get("from_name") == from_name and str(r.get("type", "")).lower() == REGION_TYPE
    ]


def regions_to_frame_labels(
    regions: list[dict[str, Any]], from_name: str, labels: list[str], frame_count: int
) -> np.ndarray:
    """(frame_count, len(labels)) 0/1 array; labels outside `labels` and frames past the end are ignored."""
    index = {label: i for i, label in enumerate(labels)}
    target = np.zeros((frame_count, len(labels)), dtype=np.uint8)
    unknown: set[str] = set()
    for region in control_regions(regions, from_name):
        value = region.get("value") or {}
        columns = []
        for label in value.get(REGION_TYPE) or []:
            if label in index:
                columns.append(index[label])
            else:
                unknown.add(label)
        for span in value.get("ranges") or []:
            try:
                start, end = int(span["start"]), int(span["end"])
            except (KeyError, TypeError, ValueError):
                logger.warning("%s: ignoring a malformed range %r", from_name, span)
                continue
            start, end = max(start, 1), min(end, frame_count)
            if start <= end:
                target[start - 1 : end, columns] = 1
    if unknown:
        logger.warning("%s: ignoring labels not in the config: %s", from_name, sorted(unknown))
    return target


def segment_value(segment: Segment, labels: list[str]) -> dict[str, Any]:
    """A prediction's `value`: the decoder's 0-based steps as Label Studio's 1-based frames."""
    return {
        "ranges": [{"start": segment.start + 1, "end": segment.end + 1}],
        REGION_TYPE: [labels[segment.label]],
    }
