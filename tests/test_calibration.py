"""Scores that mean something: a saved temperature, the region map from held-out regions to P(right), the
fallback when held-out regions are too few."""

from __future__ import annotations

import numpy as np
import pytest

from utils.temporal.calibration import (
    MIN_REGIONS,
    MIN_SLOPE,
    Calibration,
    fit_calibration,
    is_right,
    scale_probabilities,
    true_segments,
)
from utils.temporal.decoder import Segment, decode_multilabel


def test_a_saved_temperature_still_divides_the_logits_of_exclusive_classes() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    assert np.allclose(scale_probabilities(softmax, 2.0, exclusive=True), expected, atol=1e-6)


def test_a_region_is_right_when_its_iou_with_a_true_run_of_its_label_reaches_one_half() -> None:
    truth = np.zeros((20, 2), dtype=np.uint8)
    truth[4:14, 0] = 1  # steps 4..13
    runs = true_segments(truth)
    assert runs == {0: [(4, 13)], 1: []}
    assert is_right(Segment(0, 4, 8, 0.9), runs)  # IoU 5/10
    assert not is_right(Segment(0, 4, 7, 0.9), runs)  # IoU 4/10
    assert not is_right(Segment(1, 4, 13, 0.9), runs)  # another label


def held_out(rng: np.random.Generator, sequences: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequences with one label whose true runs the net finds with confidence that grows with the run's
    contrast; weak runs come out fragmented (wrong regions at a middling probability)."""
    probs, truth = [], []
    for _ in range(sequences):
        t = np.zeros((200, 1), dtype=np.uint8)
        p = np.full((200, 1), 0.1)
        for start in range(10, 190, 40):
            t[start : start + 20] = 1
            contrast = rng.uniform(0.45, 1.0)
            p[start : start + 20, 0] = np.clip(contrast + rng.normal(0, 0.15, 20), 0.01, 0.99)
        probs.append(p.astype(np.float32))
        truth.append(t)
    return probs, truth


def decode(probs: np.ndarray) -> list[Segment]:
    ones = np.ones(probs.shape[1])
    return decode_multilabel(probs, 0.5, 0.0 * ones, 2 * ones, 0 * ones)


def test_region_scores_fitted_on_held_out_regions_match_how_often_regions_are_right() -> None:
    rng = np.random.default_rng(1)
    calibration = fit_calibration(*held_out(rng, 30), decode, exclusive=False)
    assert calibration.weights is not None and calibration.regions >= MIN_REGIONS

    probs, truth = held_out(np.random.default_rng(2), 30)  # fresh data from the same source
    scores, right = [], []
    for p, t in zip(probs, truth, strict=True):
        for segment in decode(p):
            scores.append(calibration.region_score(segment, p))
            right.append(is_right(segment, true_segments(t)))
    scores, right = np.array(scores), np.array(right)
    assert 0.0 < right.mean() < 1.0
    assert abs(scores.mean() - right.mean()) < 0.05
    assert scores[right].mean() > scores[~right].mean() + 0.2


def test_too_few_held_out_regions_fall_back_to_the_mean_probability() -> None:
    probs, truth = held_out(np.random.default_rng(3), 1)
    probs, truth = [probs[0][:100]], [truth[0][:100]]  # 2 or 3 regions
    calibration = fit_calibration(probs, truth, decode, exclusive=False)
    assert calibration.weights is None and calibration.as_dict()["region_score"].startswith(
        "mean probability"
    )
    segment = decode(probs[0])[0]
    expected = float(probs[0][segment.start : segment.end + 1, 0].mean())
    scaled = calibration.scale(probs[0], exclusive=False)
    assert Calibration(1.0).region_score(segment, probs[0]) == pytest.approx(expected)
    assert 0.0 <= calibration.region_score(segment, scaled) <= 1.0


def test_calibration_survives_the_json_metadata_and_models_without_it_are_unchanged() -> None:
    calibration = fit_calibration(*held_out(np.random.default_rng(4), 10), decode, exclusive=False)
    assert Calibration.from_meta({"calibration": calibration.as_dict()}) == calibration
    assert Calibration.from_meta({}) == Calibration()
    probs = np.array([[0.2], [0.7]], dtype=np.float32)
    assert Calibration().scale(probs, exclusive=False) is probs


def test_held_out_regions_that_are_all_right_shift_scores_up_but_keep_their_order() -> None:
    probs, truth = held_out(np.random.default_rng(5), 10)
    for p, t in zip(probs, truth, strict=True):  # every weak run found whole: all held-out regions are right
        p[t[:, 0] == 1, 0] = np.maximum(p[t[:, 0] == 1, 0], 0.55)
    calibration = fit_calibration(probs, truth, decode, exclusive=False)
    assert calibration.regions == calibration.right >= MIN_REGIONS
    assert calibration.weights is not None and calibration.weights[1:] == pytest.approx((1.0,), abs=1e-6)
    segment = Segment(0, 0, 9, 0.0)
    low, high = np.full((10, 1), 0.6, dtype=np.float32), np.full((10, 1), 0.8, dtype=np.float32)
    assert 0.6 < calibration.region_score(segment, low) < calibration.region_score(segment, high)


def mean_ordered(calibration: Calibration, means: list[float]) -> list[float]:
    """Scores of one-label regions of 10 steps at the given mean probabilities (a dip at one step, so
    their minimum and length say otherwise than their mean)."""
    scores = []
    for mean in means:
        p = np.full((10, 1), mean, dtype=np.float32)
        p[3, 0], p[4, 0] = mean - 0.3, mean + 0.3
        scores.append(calibration.region_score(Segment(0, 0, 9, 0.0), p))
    return scores


def test_fitted_region_scores_keep_the_order_of_the_mean_probability() -> None:
    calibration = fit_calibration(*held_out(np.random.default_rng(6), 30), decode, exclusive=False)
    assert calibration.weights is not None and len(calibration.weights) == 2
    scores = mean_ordered(calibration, [0.35, 0.5, 0.6, 0.65])
    assert scores == sorted(scores) and len(set(scores)) == 4


def test_held_out_regions_that_rank_backwards_cannot_turn_the_order_of_scores_round() -> None:
    probs, truth = held_out(np.random.default_rng(7), 30)
    truth = [1 - t for t in truth]  # the confident runs are now wrong, the gaps between them true
    for p in probs:
        p[p[:, 0] <= 0.1, 0] = 0.55  # the true gaps come out as weak regions
    calibration = fit_calibration(probs, truth, decode, exclusive=False)
    assert calibration.weights is not None and calibration.weights[1] == pytest.approx(MIN_SLOPE, abs=1e-6)
    scores = mean_ordered(calibration, [0.6, 0.7, 0.8, 0.9])
    assert scores == sorted(scores) and len(set(scores)) == 4


def test_a_saved_three_feature_map_still_scores_with_the_minimum_and_the_length() -> None:
    saved = Calibration(1.0, (0.0, 1.0, 1.0, 0.0), 30, 15)
    loaded = Calibration.from_meta({"calibration": saved.as_dict()})
    p = np.full((10, 1), 0.7, dtype=np.float32)
    p[3, 0] = 0.2
    mean, low = float(p.mean()), 0.2
    expected = 1 / (1 + np.exp(-(np.log(mean / (1 - mean)) + np.log(low / (1 - low)))))
    assert loaded.region_score(Segment(0, 0, 9, 0.0), p) == pytest.approx(expected, rel=1e-5)
