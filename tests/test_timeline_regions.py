"""Converters between TimelineLabels regions and per-frame label arrays, and flicker removal."""

import numpy as np

from utils.video.regions import (
    clean_mask,
    frame_labels_to_segments,
    mask_to_spans,
    probs_to_segments,
    regions_to_frame_labels,
)

LABELS = ["a", "b", "c"]


def region(label: str, *ranges: tuple[int, int], from_name: str = "tl", kind: str = "timelinelabels") -> dict:
    return {
        "from_name": from_name,
        "to_name": "video",
        "type": kind,
        "value": {"ranges": [{"start": s, "end": e} for s, e in ranges], "timelinelabels": [label]},
    }


def test_regions_to_frames_is_one_based_and_end_inclusive_with_several_ranges():
    target = regions_to_frame_labels([region("a", (1, 2), (5, 5))], "tl", LABELS, 6)
    assert target[:, 0].tolist() == [1, 1, 0, 0, 1, 0]
    assert target[:, 1:].sum() == 0


def test_frames_may_carry_several_labels():
    target = regions_to_frame_labels([region("a", (1, 4)), region("b", (3, 6))], "tl", LABELS, 6)
    assert target[2].tolist() == [1, 1, 0]


def test_only_this_controls_timeline_regions_count():
    regions = [
        region("a", (1, 3), from_name="other"),
        region("b", (1, 3), kind="labels"),
        region("zzz", (1, 3)),
        region("c", (5, 99)),
    ]
    target = regions_to_frame_labels(regions, "tl", LABELS, 6)
    assert target[:, :2].sum() == 0
    assert target[:, 2].tolist() == [0, 0, 0, 0, 1, 1]  # clipped to the video's length


def test_round_trip_regions_frames_segments():
    regions = [region("a", (1, 3), (7, 9)), region("b", (2, 8)), region("c", (10, 10))]
    target = regions_to_frame_labels(regions, "tl", LABELS, 10)
    segments = frame_labels_to_segments(target, LABELS)
    assert {(s.label, s.start, s.end) for s in segments} == {
        ("a", 1, 3),
        ("a", 7, 9),
        ("b", 2, 8),
        ("c", 10, 10),
    }
    back = [region(s.label, (s.start, s.end)) for s in segments]
    np.testing.assert_array_equal(regions_to_frame_labels(back, "tl", LABELS, 10), target)


def test_mask_to_spans_handles_edges():
    assert mask_to_spans(np.array([1, 1, 0, 1], dtype=bool)) == [(1, 2), (4, 4)]
    assert mask_to_spans(np.zeros(3, dtype=bool)) == []


def test_clean_mask_merges_small_gaps_then_drops_short_runs():
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    cleaned = clean_mask(mask, min_frames=2, merge_gap=1)
    assert mask_to_spans(cleaned) == [(1, 6)]


def test_probs_to_segments_scores_by_mean_probability():
    probs = np.array([[0.9, 0.1], [0.7, 0.1], [0.2, 0.8]])
    segments = probs_to_segments(probs, ["a", "b"], threshold=0.5)
    assert (segments[0].label, segments[0].start, segments[0].end) == ("a", 1, 2)
    assert abs(segments[0].score - 0.8) < 1e-6
    assert segments[0].value() == {"ranges": [{"start": 1, "end": 2}], "timelinelabels": ["a"]}
    assert (segments[1].label, segments[1].start, segments[1].end) == ("b", 3, 3)
