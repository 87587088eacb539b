"""Training one control behind the held-out gate: check the data, fit a candidate on the tasks not held
out, score it on the held-out ones against the constant baseline and the serving version, and promote it
only if the gate accepts it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from control_models.base import AnnotatedTask, ControlModel
from utils.service.errors import TaskError
from utils.service.model_store import ControlStore
from utils.temporal.data_checks import TrainingSetCheck
from utils.temporal.data_checks import task_problem as steps_problem
from utils.temporal.evaluation import (
    Comparison,
    GateRule,
    Verdict,
    constant_baseline_f1,
    held_out_task_ids,
    judge,
    macro_f1,
)

logger = logging.getLogger(__name__)


def train_control(
    project_id: str, model: ControlModel, examples: list[AnnotatedTask], rule: GateRule, warm_start: bool
) -> dict:
    """Check the data, fit a candidate on the tasks not held out (fine-tuning the serving model when
    `warm_start` and it fits), gate it, and promote it if accepted."""
    checked = _check_training_data(model, examples)  # the tasks' inputs are not kept beyond it
    if checked.problem:
        logger.warning("project %s, control %s: %s", project_id, model.from_name, checked.problem)
        return {"rejected": checked.problem, "unusable_tasks": checked.unusable}
    held_out = held_out_task_ids(project_id, checked.labels_of)
    store = model.context.store
    staging = store.staging()
    result = _with_store(model, staging).fit(
        [e for e in checked.examples if e.task_id not in held_out],
        warm_start=warm_start,
        calibrate_on=[e for e in checked.examples if e.task_id in held_out],
    )
    candidate = staging.saved_version
    if candidate is None:
        return result  # nothing to learn ({"skipped": ...})
    # models without `task_steps` have nothing to score on: their candidates serve ungated
    verdict = gate(model, candidate, checked, held_out, rule) if checked.targets_of else None
    accepted = verdict is None or verdict.accepted
    training = {k: v for k, v in result.items() if k != "version"}
    store.record(
        candidate,
        {
            "accepted": accepted,
            "gate": verdict.as_dict() if verdict else None,
            "training": {**training, "unusable_tasks": checked.unusable},
            "trained_on": sorted(e.task_id for e in checked.examples if e.task_id not in held_out),
        },
    )
    serves = accepted and store.promote(candidate)
    logger.info(
        "project %s, control %s: candidate %s %s",
        project_id,
        model.from_name,
        candidate,
        verdict.reason if verdict else "serves (no gate for this control)",
    )
    summary = {**training, "version": candidate, "serving": serves, "unusable_tasks": checked.unusable}
    if verdict is not None:
        summary["gate"] = verdict.as_dict()
        if not verdict.accepted:
            summary["rejected"] = verdict.reason
    return summary


def gate(
    model: ControlModel, candidate: str, checked: CheckedData, held_out: set[int], rule: GateRule
) -> Verdict:
    """Score the candidate on the held-out tasks (with too few tasks to hold any out, on the training
    tasks) against the constant baseline, and against the serving version on those of the tasks that the
    serving version did not train on, so that neither is scored on what it learnt."""
    scored = [e for e in checked.examples if e.task_id in held_out] or checked.examples
    store = model.context.store
    serving = store.current_version()
    candidate_model = _with_store(model, store.at(candidate))
    serving_model = _with_store(model, store.at(serving)) if serving else None
    truth, by_candidate, by_serving = {}, {}, {}
    for example in scored:
        task = {"id": example.task_id, "data": example.data}
        targets_of = checked.targets_of[example.task_id]
        truth[example.task_id] = targets_of(example.regions)
        by_candidate[example.task_id] = targets_of(_predicted_regions(candidate_model, task))
        if serving_model is not None:
            by_serving[example.task_id] = targets_of(_predicted_regions(serving_model, task))

    def pooled_f1(predicted: dict[int, np.ndarray], task_ids: list[int]) -> float | None:
        if not task_ids:
            return None
        return macro_f1(
            np.concatenate([truth[i] for i in task_ids]), np.concatenate([predicted[i] for i in task_ids])
        )

    comparison = None
    if serving is not None:
        seen = set(store.read_record(serving).get("trained_on") or []) if held_out else set()
        compared = [i for i in truth if i not in seen]
        comparison = Comparison(compared, pooled_f1(by_candidate, compared), pooled_f1(by_serving, compared))
    return judge(
        candidate_f1=pooled_f1(by_candidate, list(truth)),
        baseline_f1=constant_baseline_f1(np.concatenate(list(truth.values()))),
        rule=rule,
        held_out_tasks=sorted(held_out),
        versus_serving=comparison,
    )


@dataclass(frozen=True)
class CheckedData:
    """A control's training tasks after the data checks: those usable, their steps, and why others are not."""

    examples: list[AnnotatedTask]
    targets_of: dict[int, Callable[[list[dict[str, Any]]], np.ndarray]]  # empty for models without steps
    unusable: list[str]
    problem: str | None = None
    labels_of: dict[int, frozenset[int]] = field(default_factory=dict)  # the labels each usable task shows


def _check_training_data(model: ControlModel, examples: list[AnnotatedTask]) -> CheckedData:
    """Leave out tasks that cannot be learnt from (with the reason), and refuse a set that cannot give a sane
    model (too little data, non-finite statistics, a label with no samples)."""
    totals = TrainingSetCheck(model.labels)
    targets_of: dict[int, Callable[[list[dict[str, Any]]], np.ndarray]] = {}
    labels_of: dict[int, frozenset[int]] = {}
    unusable: list[str] = []
    for example in examples:
        try:
            steps = model.task_steps({"id": example.task_id, "data": example.data})
        except Exception as exc:  # noqa: BLE001 - one unreadable task never breaks the training
            unusable.append(str(exc) if isinstance(exc, TaskError) else f"task {example.task_id}: {exc!r}")
            continue
        if steps is None:
            return CheckedData(examples, {}, [])
        target = steps.targets_of(example.regions)
        problem = steps_problem(steps.inputs, target)
        if problem:
            unusable.append(f"task {example.task_id}: {problem}")
            continue
        totals.add(steps.inputs, target)
        targets_of[example.task_id] = steps.targets_of
        labels_of[example.task_id] = frozenset(np.flatnonzero(target.any(axis=0)).tolist())
    for reason in unusable:
        logger.warning("%s: training leaves out %s", model.from_name, reason)
    usable = [e for e in examples if e.task_id in targets_of]
    if not usable:
        return CheckedData(
            [], {}, unusable, f"training data refused: no usable task ({'; '.join(unusable[:3])})"
        )
    annotated = {
        label
        for e in usable
        for r in e.regions
        for label in (r.get("value") or {}).get(model.tag.lower()) or []
    }
    problem = totals.problem(annotated)
    if problem:
        return CheckedData(usable, targets_of, unusable, f"training data refused: {problem}")
    return CheckedData(usable, targets_of, unusable, labels_of=labels_of)


def _with_store(model: ControlModel, store: ControlStore) -> ControlModel:
    """The same control model on another view of its store (a staging store, or one fixed version)."""
    return type(model).create(model.control, replace(model.context, store=store))


def _predicted_regions(model: ControlModel, task: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's regions for a scored task; a prediction that fails counts as predicting nothing."""
    try:
        return model.predict_regions(task)
    except Exception as exc:  # noqa: BLE001 - a model that cannot predict a task scores nothing on it
        logger.warning("task %s: prediction for the gate failed: %s", task.get("id"), exc)
        return []
