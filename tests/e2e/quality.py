"""Quality of stored predictions against ground truth, computed independently of the backend's own code:
labels per frame (video, 1-based inclusive frame ranges) or per sample (time series, seconds), then macro-F1."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def labels_in(result: Iterable[dict]) -> set[str]:
    """Every label named by the regions (the value key of a region is its type, e.g. `timelinelabels`)."""
    return {label for region in result for label in region["value"].get(region["type"], [])}


def frame_sets(result: Iterable[dict], from_name: str) -> dict[str, set[int]]:
    """Frames covered by each label of TimelineLabels regions (`value.ranges`, frames end-inclusive)."""
    frames: dict[str, set[int]] = defaultdict(set)
    for region in result:
        if region.get("from_name") != from_name:
            continue
        value = region["value"]
        for label in value.get("timelinelabels", []):
            for span in value.get("ranges", []):
                frames[label].update(range(int(span["start"]), int(span["end"]) + 1))
    return dict(frames)


def sample_sets(result: Iterable[dict], from_name: str, hz: float) -> dict[str, set[int]]:
    """Sample indices covered by each label of TimeSeriesLabels regions (`value.start/end` in seconds)."""
    samples: dict[str, set[int]] = defaultdict(set)
    for region in result:
        if region.get("from_name") != from_name:
            continue
        value = region["value"]
        first, last = round(float(value["start"]) * hz), round(float(value["end"]) * hz)
        for label in value.get("timeserieslabels", []):
            samples[label].update(range(first, last + 1))
    return dict(samples)


def truth_frames(ground_truth: dict, name: str) -> dict[str, set[int]]:
    """Frames of each label in the shared video ground_truth.json (1-based, end inclusive)."""
    frames: dict[str, set[int]] = defaultdict(set)
    for span in ground_truth["files"][name]["ranges"]:
        frames[span["label"]].update(range(span["start"], span["end"] + 1))
    return dict(frames)


def truth_samples(ground_truth: dict, name: str) -> dict[str, set[int]]:
    """Sample indices of each label in the shared time-series ground_truth.json."""
    samples: dict[str, set[int]] = defaultdict(set)
    for span in ground_truth["files"][name]["ranges"]:
        samples[span["label"]].update(range(span["start_idx"], span["end_idx_exclusive"]))
    return dict(samples)


def macro_f1(predicted: dict[str, set[int]], truth: dict[str, set[int]]) -> float:
    """Mean F1 over the labels present in the ground truth; a label never predicted scores 0."""
    scores = []
    for label, expected in truth.items():
        got = predicted.get(label, set())
        hits = len(got & expected)
        scores.append(2 * hits / (len(got) + len(expected)) if got or expected else 1.0)
    return sum(scores) / len(scores) if scores else 0.0


def majority_baseline(truth: dict[str, set[int]]) -> float:
    """Macro-F1 of always answering the most frequent label: the chance level the model must beat."""
    if not truth:
        return 0.0
    everything = set().union(*truth.values())
    majority = max(truth, key=lambda label: len(truth[label]))
    return macro_f1({majority: everything}, truth)


def series_scores(
    result: list[dict], ground_truth: dict, name: str, from_name: str, hz: float
) -> tuple[float, float]:
    """(macro-F1 of a time-series prediction, majority baseline) for one shared file."""
    expected = truth_samples(ground_truth, name)
    return macro_f1(sample_sets(result, from_name, hz), expected), majority_baseline(expected)
