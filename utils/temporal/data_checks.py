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


class TrainingSetCheck:
    """What the whole training set must satisfy, accumulated one task at a time so that no task's inputs
    need to stay in memory: enough steps, one feature width, statistics that float32 can hold (the nets
    standardize their inputs in float32), and samples for every label the annotations name."""

    def __init__(self, labels: list[str]):
        self.labels = labels
        self.tasks = 0
        self.steps = 0
        self.widths: set[int] = set()
        self.sums = np.zeros(0, dtype=np.float32)
        self.squares = np.zeros(0, dtype=np.float32)
        self.covered = np.zeros(len(labels), dtype=np.int64)

    def add(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        self.tasks += 1
        self.steps += len(inputs)
        self.widths.add(inputs.shape[1])
        self.covered += targets.sum(axis=0).astype(np.int64)
        if len(self.widths) > 1:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            sums = inputs.sum(axis=0, dtype=np.float32)
            squares = np.square(inputs, dtype=np.float32).sum(axis=0, dtype=np.float32)
            self.sums = sums if self.tasks == 1 else self.sums + sums
            self.squares = squares if self.tasks == 1 else self.squares + squares

    def problem(self, annotated: set[str]) -> str | None:
        """Why these tasks together cannot give a sane model, or None. `annotated`: the labels their
        annotations name."""
        if self.steps < MIN_TRAINING_STEPS:
            return f"too little data: {self.steps} frames or samples in {self.tasks} tasks, at least {MIN_TRAINING_STEPS}"
        if len(self.widths) > 1:
            return f"the tasks' feature widths differ: {sorted(self.widths)}"
        if not (np.isfinite(self.sums).all() and np.isfinite(self.squares).all()):
            return "the feature statistics (sums of values and of squares) overflow float32: rescale the data"
        empty = [
            label for label, n in zip(self.labels, self.covered, strict=True) if label in annotated and n == 0
        ]
        if empty:
            return f"labels {empty} are in the annotations but their regions cover no frame or sample"
        return None
