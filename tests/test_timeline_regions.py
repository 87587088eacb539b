"""Converters between TimelineLabels regions and per-frame label arrays, through the shared decoder."""

import numpy as np

from utils.temporal.decoder import decode_multilabel
from utils.video.regions import regions_to_frame_labels, segment_value

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


def decode(probs: np.ndarray, min_frames: int = 1, merge_gap: int = 0, switch_cost: float = 0.0) -> list:
    count = probs.shape[1]
    return decode_multilabel(
        probs, 0.5, np.full(count, switch_cost), np.full(count, min_frames), np.full(count, merge_gap)
    )


def test_round_trip_regions_frames_segments():
    regions = [region("a", (1, 3), (7, 9)), region("b", (2, 8)), region("c", (10, 10))]
    target = regions_to_frame_labels(regions, "tl", LABELS, 10)
    values = [segment_value(s, LABELS) for s in decode(target.astype(np.float32))]
    assert sorted(
        (v["timelinelabels"][0], v["ranges"][0]["start"], v["ranges"][0]["end"]) for v in values
    ) == [
        ("a", 1, 3),
        ("a", 7, 9),
        ("b", 2, 8),
        ("c", 10, 10),
    ]
    back = [{"from_name": "tl", "type": "timelinelabels", "value": v} for v in values]
    np.testing.assert_array_equal(regions_to_frame_labels(back, "tl", LABELS, 10), target)


def test_decoding_merges_small_gaps_then_drops_short_runs():
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=np.float32)[:, None]
    assert [(s.start, s.end) for s in decode(mask, min_frames=2, merge_gap=1)] == [(0, 5)]


def test_switch_cost_smooths_flicker_that_the_threshold_keeps():
    probs = np.full((30, 1), 0.9, dtype=np.float32)
    probs[10:12] = 0.4  # a dip below the threshold, longer than the merge gap
    assert len(decode(probs)) == 2
    assert [(s.start, s.end) for s in decode(probs, switch_cost=2.0)] == [(0, 29)]


def test_segments_score_by_mean_probability_and_become_one_based_frames():
    probs = np.array([[0.9, 0.1], [0.7, 0.1], [0.2, 0.8]])
    first, second = sorted(decode(probs), key=lambda s: s.start)
    assert abs(first.score - 0.8) < 1e-6
    assert segment_value(first, ["a", "b"]) == {"ranges": [{"start": 1, "end": 2}], "timelinelabels": ["a"]}
    assert segment_value(second, ["a", "b"]) == {"ranges": [{"start": 3, "end": 3}], "timelinelabels": ["b"]}
