"""Do region and task scores mean what they say? Measured on our own splits of the shared data.

Per dataset, two folds (half of the recordings trains once, the other half is the test): the training
recordings are cut into tasks of about `TRAIN_CHUNK` steps and trained on as the service does
(`training_gate.train_control`: the gate holds out about a fifth of the tasks, the model trains on the rest and
fits its calibration on the part early stopping held out pooled with the gate's held-out tasks); the test
recordings are cut into short tasks of `CHUNK` steps, which the trained model predicts. Printed per kind,
before calibration (region score = mean probability, no temperature; the task score made from them as
model.py does) and after, from the same trained models:
- ECE: expected calibration error of region scores (10 equal-width bins) against "right" (IoU >= 0.5 with a
  true region of its label); target <= 0.1;
- AUROC of region scores, right vs wrong regions; target >= 0.9;
- Spearman correlation of task score with task macro-F1; target >= 0.5.
Run: `.venv/bin/python -m bench.bench_calibration [--datasets video watch basicmotions] [--epochs 0]`
(`--epochs` caps time-series training, 0: the model's own schedule, which stops early at about 15-21 epochs
on these splits; video trains as the service does)
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.chunked_tasks import Dataset, SeriesSet, TaskResult, VideoSet  # noqa: E402
from control_models.base import ControlModel  # noqa: E402
from training_gate import train_control  # noqa: E402
from utils.temporal.evaluation import GateRule  # noqa: E402

# (training recordings, test recordings) per fold; test recordings are cut into tasks of `CHUNK` steps
FOLDS = {
    "video": [
        ([f"spliced_train{i}" for i in range(4)], [f"spliced_train{i}" for i in range(4, 8)]),
        ([f"spliced_train{i}" for i in range(4, 8)], [f"spliced_train{i}" for i in range(4)]),
    ],
    "watch": [
        ([f"watch_subject0{i}.csv" for i in (1, 2, 3, 4)], [f"watch_subject0{i}.csv" for i in (5, 6, 7)]),
        ([f"watch_subject0{i}.csv" for i in (4, 5, 6, 7)], [f"watch_subject0{i}.csv" for i in (1, 2, 3)]),
    ],
    "basicmotions": [
        ([f"basicmotions_train{i}.csv" for i in range(4)], [f"basicmotions_test{i}.csv" for i in range(4)]),
        ([f"basicmotions_test{i}.csv" for i in range(4)], [f"basicmotions_train{i}.csv" for i in range(4)]),
    ],
}
CHUNK = {"video": 100, "watch": 5000, "basicmotions": 200}
TRAIN_CHUNK = {"video": 150, "watch": 4400, "basicmotions": 200}


def ece(scores: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: bin-size weighted |share right - mean score| over equal-width bins."""
    which = np.minimum((scores * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - scores[inside].mean())
    return float(total)


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def auroc(scores: np.ndarray, right: np.ndarray) -> float | None:
    """P(a right region scores above a wrong one), ties counting half; None without both kinds."""
    positives, negatives = int(right.sum()), int((~right).sum())
    if not positives or not negatives:
        return None
    r = ranks(scores)
    return float((r[right].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


TASK_SCORES = {  # task scores from the region scores alone, for comparison with the one model.py uses
    "mean region score": lambda scores: float(np.mean(scores)) if scores else 0.0,
    "min region score": lambda scores: min(scores, default=0.0),
    "product": lambda scores: float(np.prod(scores)) if scores else 0.0,
}


def figures(results: list[TaskResult]) -> dict[str, float | None]:
    scores = np.array([r.score for t in results for r in t.regions])
    right = np.array([r.right for t in results for r in t.regions], dtype=bool)
    task_scores = np.array([t.score for t in results])
    task_f1 = np.array([t.macro_f1 for t in results])
    return {
        "regions": len(scores),
        "right": float(right.mean()) if len(right) else None,
        "ece": ece(scores, right) if len(scores) else None,
        "auroc": auroc(scores, right),
        "spearman": spearman(task_scores, task_f1),
        "tasks": len(results),
        **{
            f"spearman, {name}": spearman(
                np.array([score([r.score for r in t.regions]) for t in results]), task_f1
            )
            for name, score in TASK_SCORES.items()
        },
    }


def fold_auroc(results: list[TaskResult]) -> str:
    """AUROC of one model's regions: calibration must not lower it (it keeps their order)."""
    value = figures(results)["auroc"]
    return "-" if value is None else f"{value:.3f}"


def with_epochs(model: ControlModel, epochs: int) -> ControlModel:
    """The model with its training capped at `epochs`, set where `train_control` reads it: the model's
    settings (it rebuilds the model from its context, which drops a changed `train_config`)."""
    settings = model.context.settings
    capped = replace(settings, timeseries=replace(settings.timeseries, epochs=epochs))
    return type(model).create(model.control, replace(model.context, settings=capped))


def run_dataset(name: str, data: Dataset, epochs: int | None, tmp: Path) -> tuple[list, list]:
    before, after = [], []
    for fold, (train, test) in enumerate(FOLDS[name]):
        model = data.model(tmp, f"{name}-{fold}")
        if epochs and data.kind == "time series":
            model = with_epochs(model, epochs)
        tasks = [data.task(i, *c) for i, c in enumerate(data.chunks(train, TRAIN_CHUNK[name]), start=1)]
        started = time.perf_counter()
        summary = train_control(
            f"{name}-{fold}", model, tasks, rule=GateRule(tolerance=1.0), warm_start=False
        )
        fit_s = time.perf_counter() - started
        if not summary.get("serving"):  # the first model must beat a constant baseline; measure it anyway
            print(f"  {name} fold {fold}: the gate refused the model ({summary.get('rejected')})")
            model.context.store.promote(summary["version"])
        calibration = model.trained()[1]["calibration"]
        test_tasks = [data.task(1000 + i, *c) for i, c in enumerate(data.chunks(test, CHUNK[name]))]
        model.calibrated = False
        fold_before = [data.evaluate(model, t) for t in test_tasks]
        model.calibrated = True
        fold_after = [data.evaluate(model, t) for t in test_tasks]
        before, after = before + fold_before, after + fold_after
        print(
            f"  {name} fold {fold}: fit {fit_s:.1f} s on {len(tasks)} tasks "
            f"({len(summary['gate']['held_out_tasks'])} held out by the gate), {len(test_tasks)} test tasks; "
            "calibration "
            f"T={calibration['temperature']:.2f}, {calibration['region_score']}, "
            f"{calibration['held_out_right']}/{calibration['held_out_regions']} held-out regions right; "
            f"AUROC in this fold {fold_auroc(fold_before)} -> {fold_auroc(fold_after)}",
            flush=True,
        )
    return before, after


def show(label: str, before: list[TaskResult], after: list[TaskResult]) -> None:
    def fmt(value: float | int | None) -> str:
        return "   -  " if value is None else f"{value:6.3f}" if isinstance(value, float) else f"{value:6d}"

    b, a = figures(before), figures(after)
    print(f"\n== {label}")
    for key, target in [
        ("regions", ""),
        ("right", ""),
        ("ece", "<= 0.1"),
        ("auroc", ">= 0.9"),
        ("spearman", ">= 0.5"),
        ("tasks", ""),
        *((f"spearman, {name}", "") for name in TASK_SCORES),
    ]:
        print(f"  {key:26s} before {fmt(b[key])}   after {fmt(a[key])}   {target}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["video", "watch", "basicmotions"])
    parser.add_argument(
        "--epochs", type=int, default=0, help="cap on time-series training epochs (0: the model's own)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    by_kind: dict[str, tuple[list, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = VideoSet() if name == "video" else SeriesSet(name)
            before, after = run_dataset(name, data, args.epochs, Path(tmp))
            show(name, before, after)
            kind = by_kind.setdefault(data.kind, ([], []))
            kind[0].extend(before)
            kind[1].extend(after)
    for kind, (before, after) in by_kind.items():
        show(f"all {kind}", before, after)


if __name__ == "__main__":
    main()
