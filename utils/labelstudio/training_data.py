"""Which annotation of a task is training data: cancelled (skipped) ones never are, a ground-truth
annotation wins over the others, otherwise the most recently updated one. Malformed tasks and annotations
are left out with a reason, so the rest of the project still trains."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from utils.labelstudio.payloads import annotation_problem, integer_id, task_problem

logger = logging.getLogger(__name__)


class TrainingTasks(NamedTuple):
    """`chosen`: `(task id, task data, chosen result)` per usable task; `skipped`: why others were left out."""

    chosen: list[tuple[int, dict[str, Any], list[dict[str, Any]]]]
    skipped: list[str]


def choose_annotation(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The training annotation among well-formed ones (see `annotation_problem`)."""
    usable = [a for a in annotations if annotation_problem(a) is None and not a.get("was_cancelled")]
    if not usable:
        return None
    ground_truth = [a for a in usable if a.get("ground_truth")]
    candidates = ground_truth or usable
    return max(candidates, key=lambda a: (str(a.get("updated_at") or ""), integer_id(a["id"])))


def labelled_tasks(tasks: list[dict[str, Any]]) -> TrainingTasks:
    """Every task that has a usable annotation, and a reason for each malformed task or annotation."""
    chosen, skipped = [], []
    for task in tasks:
        problem = task_problem(task)
        if problem is not None:
            skipped.append(problem)
            continue
        annotations = task.get("annotations")
        annotations = annotations if isinstance(annotations, list) else []
        for annotation in annotations:
            problem = annotation_problem(annotation)
            if problem is not None:
                skipped.append(f"task {task['id']}: {problem}")
        annotation = choose_annotation(annotations)
        if annotation is not None:
            chosen.append((integer_id(task["id"]), task.get("data") or {}, annotation["result"]))
    for reason in skipped:
        logger.warning("training data skipped: %s", reason)
    return TrainingTasks(chosen, skipped)
