"""The gate's measures: step-level macro-F1, the constant baseline, the held-out choice, the decision rule,
and the data checks that refuse training sets that cannot give a sane model."""

from __future__ import annotations

import numpy as np
import pytest

from utils.temporal.data_checks import TrainingSetCheck, task_problem
from utils.temporal.evaluation import (
    Comparison,
    GateRule,
    constant_baseline_f1,
    held_out_task_ids,
    judge,
    macro_f1,
)

RULE = GateRule(tolerance=0.05, min_tasks_to_reject=2)


def steps(*columns: str) -> np.ndarray:
    """(steps, labels) from one string per label, '1' marking a labelled step."""
    return np.array([[int(c) for c in column] for column in columns]).T


def test_macro_f1_averages_labels_present_in_truth_or_prediction() -> None:
    truth = steps("1100", "0011", "0000")
    assert macro_f1(truth, truth) == 1.0
    assert macro_f1(truth, steps("1000", "0000", "0000")) == pytest.approx((2 / 3 + 0.0) / 2)
    assert macro_f1(truth, steps("1100", "0011", "1000")) == pytest.approx(2 / 3)  # a false label counts
    assert macro_f1(steps("0000"), steps("0000")) is None


def test_constant_baseline_is_every_label_everywhere() -> None:
    truth = steps("1100", "0001")
    assert constant_baseline_f1(truth) == pytest.approx((2 * 2 / 6 + 2 * 1 / 5) / 2)


def same_labels(task_ids) -> dict[int, set[int]]:
    return {task_id: {0, 1} for task_id in task_ids}


def test_held_out_tasks_are_fixed_per_project_and_stay_held_out_as_tasks_arrive() -> None:
    assert held_out_task_ids("1", same_labels(range(4))) == set()  # too few tasks: all of them train
    ten = held_out_task_ids("1", same_labels(range(10)))
    assert len(ten) == 2 and held_out_task_ids("1", same_labels(reversed(range(10)))) == ten
    assert (
        held_out_task_ids("2", same_labels(range(10))) != ten
        or held_out_task_ids("3", same_labels(range(10))) != ten
    )
    assert len(held_out_task_ids("1", same_labels(range(100)))) == 20


def test_a_task_showing_a_rare_label_is_never_held_out_of_training() -> None:
    labels_of = same_labels(range(10))
    first = min(held_out_task_ids("1", labels_of))
    labels_of[first] = {0, 1, 2}  # the only task that shows label 2
    held_out = held_out_task_ids("1", labels_of)
    assert first not in held_out and len(held_out) == 2
    for task_id in range(10):  # label 2 in three tasks: one of them may go, two stay in training
        labels_of[task_id] = {0, 1, 2} if task_id < 3 else {0, 1}
    held_out = held_out_task_ids("1", labels_of)
    assert len(held_out & {0, 1, 2}) <= 1 and len(held_out) == 2


def test_gate_accepts_only_what_beats_the_baseline_and_is_not_worse_than_serving() -> None:
    assert judge(0.8, 0.5, RULE, [1]).accepted
    first = judge(0.5, 0.5, RULE, [1])
    assert not first.accepted and "constant baseline" in first.reason
    assert judge(0.8, 0.5, RULE, [1], Comparison([1], 0.76, 0.8)).accepted  # within the tolerance
    worse = judge(0.8, 0.5, RULE, [], Comparison([1, 2], 0.7, 0.8))
    assert not worse.accepted and "serving version" in worse.reason and worse.scored_on == "training tasks"
    assert worse.compared_tasks == [1, 2] and worse.serving_f1 == 0.8
    assert judge(None, None, RULE, [1]).accepted  # nothing labelled to score on


def test_gate_does_not_reject_on_one_task_against_the_serving_version() -> None:
    noisy = judge(0.7, 0.5, RULE, [4], Comparison([4], 0.69, 0.77))
    assert noisy.accepted and "too few tasks to reject on (1, needs 2)" in noisy.reason
    assert not judge(
        0.4, 0.5, RULE, [4], Comparison([4], 0.4, 0.77)
    ).accepted  # the baseline check still holds


def test_gate_does_not_compare_on_tasks_the_serving_version_trained_on() -> None:
    unfair = judge(0.8, 0.5, RULE, [3], Comparison([], None, None))
    assert unfair.accepted and "not compared" in unfair.reason


def test_task_checks_name_what_is_wrong() -> None:
    labelled = steps("0110")
    assert task_problem(np.ones((4, 3)), labelled) is None
    assert "no frames" in task_problem(np.ones((0, 3)), labelled[:0])
    assert "not finite" in task_problem(np.array([[1.0], [np.nan], [np.inf], [0.0]]), labelled)
    assert "cover none" in task_problem(np.ones((4, 3)), steps("0000"))


def check(inputs: list[np.ndarray], targets: list[np.ndarray], labels: list[str], annotated: set[str]):
    totals = TrainingSetCheck(labels)
    for x, y in zip(inputs, targets, strict=True):
        totals.add(x, y)
    return totals.problem(annotated)


def test_training_set_checks_refuse_sets_that_cannot_give_a_sane_model() -> None:
    x, y = [np.ones((10, 2))], [steps("1" * 5 + "0" * 5, "0" * 10)]
    assert check(x, y, ["a", "b"], {"a"}) is None
    assert "too little data" in check([np.ones((3, 2))], [steps("111")], ["a"], {"a"})
    assert "cover no frame" in check(x, y, ["a", "b"], {"a", "b"})
    assert "widths differ" in check(x + [np.ones((10, 3))], y + y, ["a", "b"], {"a"})
    huge = [np.full((10, 2), 3e38, dtype=np.float32)]  # finite values whose sums overflow float32
    assert "overflow float32" in check(huge, y, ["a", "b"], {"a"})


def test_the_minimum_of_tasks_to_reject_on_is_the_rule_s() -> None:
    strict = GateRule(tolerance=0.05, min_tasks_to_reject=1)
    assert not judge(0.7, 0.5, strict, [4], Comparison([4], 0.69, 0.77)).accepted
    lenient = GateRule(tolerance=0.05, min_tasks_to_reject=3)
    noisy = judge(0.7, 0.5, lenient, [4, 5], Comparison([4, 5], 0.69, 0.77))
    assert noisy.accepted and "(2, needs 3)" in noisy.reason
