"""A task's score is the expected share of its steps that the prediction gets right: region scores weighted
by the steps they cover, and the model's probability of "no label" on the steps no region covers."""

from __future__ import annotations

import numpy as np
import pytest

from utils.temporal.decoder import Segment
from utils.temporal.task_score import no_label_probability, task_score


def test_steps_inside_regions_count_their_region_score_so_a_long_region_weighs_more() -> None:
    probs = np.full((10, 2), 0.9)
    segments = [Segment(0, 0, 7, 0.0), Segment(1, 8, 9, 0.0)]
    assert task_score(probs, False, segments, [0.9, 0.4]) == pytest.approx((8 * 0.9 + 2 * 0.4) / 10)


def test_overlapping_regions_of_two_labels_give_their_steps_the_mean_of_their_scores() -> None:
    probs = np.full((4, 2), 0.9)
    segments = [Segment(0, 0, 3, 0.0), Segment(1, 2, 3, 0.0)]
    assert task_score(probs, False, segments, [0.8, 0.4]) == pytest.approx((2 * 0.8 + 2 * 0.6) / 4)


def test_steps_outside_every_region_count_the_probability_that_no_label_is_on() -> None:
    multilabel = np.array([[0.1, 0.2], [0.5, 0.5]])
    assert no_label_probability(multilabel, exclusive=False) == pytest.approx([0.9 * 0.8, 0.25])
    exclusive = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # background first
    assert no_label_probability(exclusive, exclusive=True) == pytest.approx([0.7, 0.1])
    assert task_score(exclusive, True, [Segment(1, 1, 1, 0.0)], [0.6]) == pytest.approx((0.7 + 0.6) / 2)


def test_content_the_model_finds_no_label_for_makes_a_task_less_certain_than_its_regions_say() -> None:
    """The earlier score (the mean region score) put both tasks at 0.9: the half no region covers, where
    the model thinks some label is on but none reaches its threshold, now counts."""
    probs = np.full((20, 3), 0.05)
    probs[:10, 0] = 0.95
    known = task_score(probs, False, [Segment(0, 0, 9, 0.0)], [0.9])
    probs[10:, 1:] = 0.4  # the second half: unlike anything learnt, two labels half-way on
    unsure = task_score(probs, False, [Segment(0, 0, 9, 0.0)], [0.9])
    assert unsure < known - 0.25
    assert known == pytest.approx((10 * 0.9 + 10 * 0.95**3) / 20)


def test_a_task_without_steps_scores_zero_and_comes_first() -> None:
    assert task_score(np.zeros((0, 2)), False, [], []) == 0.0
