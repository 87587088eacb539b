"""Which annotation of a task is training data: cancelled (skipped) ones never are, a ground-truth
annotation wins over the others, otherwise the most recently updated one."""

from __future__ import annotations

from typing import Any


def choose_annotation(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [a for a in annotations if not a.get("was_cancelled") and isinstance(a.get("result"), list)]
    if not usable:
        return None
    ground_truth = [a for a in usable if a.get("ground_truth")]
    candidates = ground_truth or usable
    return max(candidates, key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0)))


def labelled_tasks(tasks: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
    """`(task id, task data, chosen result)` for every task that has a usable annotation."""
    chosen = []
    for task in tasks:
        annotation = choose_annotation(task.get("annotations") or [])
        if annotation is not None:
            chosen.append((int(task["id"]), task.get("data") or {}, annotation["result"]))
    return chosen
