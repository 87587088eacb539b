"""Checks that training data can give a sane model, run before any training: a task that cannot be learnt
from is left out with a reason, and a training set that cannot give a sane model is refused with one."""

from __future__ import annotations

import numpy as np

MIN_TRAINING_STEPS = 8


def task_problem(inputs: np.ndarray, targets: np.ndarray) -> str | None:
    """Why one task cannot be trained on, or None. `inputs` (steps, channels), `targets` (steps, labels)."""
    if inputs.ndim != 2 or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        return f"it has no frames or samples with features (shape {inputs.shape})"
    bad = int((~np.isfinite(inputs)).sum())
    if bad:
        return f"{bad} of its feature values are not finite"
    if not targets.any():
        return "its regions cover none of its frames or samples"
    return None


def training_set_problem(
    inputs: list[np.ndarray], targets: list[np.ndarray], labels: list[str], annotated: set[str]
) -> str | None:
    """Why the usable tasks together cannot give a sane model, or None. `annotated`: the labels the
    annotations of these tasks name."""
    steps = sum(len(x) for x in inputs)
    if steps < MIN_TRAINING_STEPS:
        return f"too little data: {steps} frames or samples in {len(inputs)} tasks, at least {MIN_TRAINING_STEPS}"
    widths = sorted({x.shape[1] for x in inputs})
    if len(widths) > 1:
        return f"the tasks' feature widths differ: {widths}"
    stacked = np.concatenate(inputs)
    with np.errstate(over="ignore", invalid="ignore"):  # in float32, as the nets standardize their inputs
        mean, std = stacked.mean(axis=0, dtype=np.float32), stacked.std(axis=0, dtype=np.float32)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        return "the feature statistics (mean, standard deviation) overflow float32: rescale the data"
    covered = np.concatenate(targets).sum(axis=0)
    empty = [label for label, count in zip(labels, covered, strict=True) if label in annotated and count == 0]
    if empty:
        return f"labels {empty} are in the annotations but their regions cover no frame or sample"
    return None
