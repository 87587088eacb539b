"""Pure converters between TimelineLabels regions and per-frame label arrays, plus flicker removal.

Label Studio frames are 1-based and ranges are end inclusive; arrays here are 0-based (frame n is row
n - 1). A region may hold several ranges, and a frame may carry several labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

REGION_TYPE = "timelinelabels"


@dataclass(frozen=True)
class Segment:
    """One predicted label over frames start..end (1-based, inclusive) with its mean probability."""

    label: str
    start: int
    end: int
    score: float

    def value(self) -> dict[str, Any]:
        return {"ranges": [{"start": self.start, "end": self.end}], "timelinelabels": [self.label]}


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


def mask_to_spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of true frames as 1-based inclusive (start, end) pairs."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s) + 1, int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def clean_mask(mask: np.ndarray, min_frames: int = 1, merge_gap: int = 0) -> np.ndarray:
    """Remove flicker: fill gaps of at most `merge_gap` frames between runs, then drop runs shorter
    than `min_frames`."""
    cleaned = np.asarray(mask, dtype=bool).copy()
    spans = mask_to_spans(cleaned)
    for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False):
        if next_start - prev_end - 1 <= merge_gap:
            cleaned[prev_end : next_start - 1] = True
    for start, end in mask_to_spans(cleaned):
        if end - start + 1 < min_frames:
            cleaned[start - 1 : end] = False
    return cleaned


def probs_to_segments(
    probs: np.ndarray,
    labels: list[str],
    threshold: float,
    min_frames: int = 1,
    merge_gap: int = 0,
) -> list[Segment]:
    """Segments where each label's probability reaches `threshold`, after flicker removal."""
    segments = []
    for column, label in enumerate(labels):
        mask = clean_mask(probs[:, column] >= threshold, min_frames, merge_gap)
        for start, end in mask_to_spans(mask):
            score = float(probs[start - 1 : end, column].mean())
            segments.append(Segment(label, start, end, score))
    return sorted(segments, key=lambda s: (s.start, s.label))


def frame_labels_to_segments(target: np.ndarray, labels: list[str]) -> list[Segment]:
    """Segments of a 0/1 label array (score 1), the inverse of `regions_to_frame_labels`."""
    return probs_to_segments(target.astype(np.float32), labels, threshold=0.5)
