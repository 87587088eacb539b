"""Which per-region features separate right time-series regions from wrong ones? AUROC per feature on our
held-out subjects, to choose what a region's score is made of (`utils.temporal.calibration`).

Same folds, tasks and training as `bench_calibration` (the service's `training_gate.train_control`). The
served model decodes each test task as the service does; every decoded region gets features from its
label's per-step probabilities over the region, under several views of the same task:
- the served probabilities: mean (the score before calibration), minimum, margin between the two highest
  label means over the region, length;
- disagreement of views that cost extra passes at predict time: `--passes` forward passes with dropout on
  (MC dropout, the whole task as one window), prediction windows shifted by a half, one and one and a half
  training windows, the task resampled 15% shorter and longer (the time warp the net was trained with), and
  `--members` models of one fold, each trained on its own split of the training tasks (the gate holds out
  other tasks per project id: a bagged ensemble, `--members` times the training);
  per view set: the mean over views of the region's label mean, and the share of views whose region mean
  ranks the region's label first ("agree").
Printed per dataset: regions, share right, and AUROC (right vs wrong; 0.5 = no separation) of each feature;
held-out regions of the calibration are not used here.
Run: `.venv/bin/python -m bench.bench_region_features [--datasets watch basicmotions] [--members 3]
[--passes 8] [--epochs 0]`
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.bench_calibration import CHUNK, FOLDS, TRAIN_CHUNK, auroc, with_epochs  # noqa: E402
from bench.chunked_tasks import SeriesSet  # noqa: E402
from control_models.base import ControlModel  # noqa: E402
from control_models.timeseries_labels import model_input  # noqa: E402
from training_gate import train_control  # noqa: E402
from utils.temporal.calibration import is_right, true_segments  # noqa: E402
from utils.temporal.decoder import Segment  # noqa: E402
from utils.temporal.evaluation import GateRule  # noqa: E402
from utils.temporal.sequence_net import SequenceNet, predict_logits, probabilities  # noqa: E402
from utils.timeseries.regions import sample_period  # noqa: E402

WARPS = (0.85, 1.15)


def trained_model(data: SeriesSet, project: str, tasks: list, epochs: int, tmp: Path) -> ControlModel:
    model = data.model(tmp, project)
    if epochs:
        model = with_epochs(model, epochs)
    summary = train_control(project, model, tasks, rule=GateRule(tolerance=1.0), warm_start=False)
    if not summary.get("serving"):  # the first model must beat a constant baseline; measure it anyway
        model.context.store.promote(summary["version"])
    return model


def label_probs(probs: np.ndarray, mode: str) -> np.ndarray:
    return probs[:, 1:] if mode == "exclusive" else probs


def served(model: ControlModel, x: np.ndarray) -> np.ndarray:
    """The served per-step probabilities (exclusive: background first)."""
    net, meta = model.trained()
    return probabilities(predict_logits(net, x, int(meta["sequence_size"])), meta["mode"])


def view(model: ControlModel, x: np.ndarray) -> np.ndarray:
    """The labels' per-step probabilities (background dropped)."""
    return label_probs(served(model, x), model.trained()[1]["mode"])


def mc_dropout(net: SequenceNet, x: np.ndarray, mode: str, passes: int) -> list[np.ndarray]:
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        out = [net(torch.from_numpy(x[None]))[0].numpy() for _ in range(passes)]
    net.eval()
    return [label_probs(probabilities(logits, mode), mode) for logits in out]


def shifted(model: ControlModel, x: np.ndarray) -> list[np.ndarray]:
    """Prediction windows starting elsewhere: the task with its first samples mirrored in front."""
    size = int(model.trained()[1]["sequence_size"])
    views = []
    for pad in (size // 2, size, 3 * size // 2):
        pad = min(pad, len(x) - 1)
        views.append(view(model, np.concatenate([x[1 : pad + 1][::-1], x]))[pad:])
    return views


def resample(values: np.ndarray, length: int) -> np.ndarray:
    at = np.linspace(0, len(values) - 1, length)
    return np.stack([np.interp(at, np.arange(len(values)), c) for c in values.T], axis=1).astype(np.float32)


def warped(model: ControlModel, x: np.ndarray) -> list[np.ndarray]:
    return [resample(view(model, resample(x, round(len(x) * f))), len(x)) for f in WARPS]


def region_means(views: list[np.ndarray], segment: Segment) -> np.ndarray:
    """(views, labels): each view's mean probability of every label over the segment."""
    return np.stack([v[segment.start : segment.end + 1].mean(axis=0) for v in views])


def features(segment: Segment, probs: np.ndarray, view_sets: dict[str, list[np.ndarray]]) -> dict[str, float]:
    own = probs[segment.start : segment.end + 1]
    means = np.sort(own.mean(axis=0))
    out = {
        "mean probability": float(own[:, segment.label].mean()),
        "minimum": float(own[:, segment.label].min()),
        "margin to the second label": float(means[-1] - means[-2]) if len(means) > 1 else 1.0,
        "length": float(len(own)),
    }
    for name, views in view_sets.items():
        per_view = region_means(views, segment)
        out[f"{name}: mean"] = float(per_view[:, segment.label].mean())
        out[f"{name}: agree"] = float((per_view.argmax(axis=1) == segment.label).mean())
    return out


def run_fold(
    data: SeriesSet, name: str, fold: int, args: argparse.Namespace, tmp: Path
) -> list[tuple[dict[str, float], bool]]:
    members, passes = args.members, args.passes
    train, test = FOLDS[name][fold]
    tasks = [data.task(i, *c) for i, c in enumerate(data.chunks(train, TRAIN_CHUNK[name]), start=1)]
    started = time.perf_counter()
    # member 0 is bench_calibration's model (same project id); the others hold out other tasks
    models = [
        trained_model(data, f"{name}-{fold}" + (f"-{m}" if m else ""), tasks, args.epochs, tmp)
        for m in range(members)
    ]
    fit_s = time.perf_counter() - started
    net, meta = models[0].trained()
    started = time.perf_counter()
    rows = []
    for rec_name, lo, hi in data.chunks(test, CHUNK[name]):
        rec = data.recordings[rec_name]
        x = model_input(rec.steps[lo:hi], np.asarray(meta["mean"]), np.asarray(meta["std"]))
        full = served(models[0], x)
        segments = models[0].decode(full, meta, sample_period(rec.times[lo:hi]))
        probs = label_probs(full, meta["mode"])
        view_sets: dict[str, list[np.ndarray]] = {
            f"MC dropout x{passes}": mc_dropout(net, x, meta["mode"], passes),
            "shifted windows x3": shifted(models[0], x),
            "time warp x2": warped(models[0], x),
        }
        if members > 1:
            view_sets[f"bagged ensemble x{members}"] = [probs] + [view(m, x) for m in models[1:]]
        truth = true_segments(rec.truth[lo:hi])
        rows += [(features(s, probs, view_sets), is_right(s, truth)) for s in segments]
    print(
        f"  {name} fold {fold}: {members} model(s) trained in {fit_s:.0f} s, "
        f"{len(rows)} test regions scored in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return rows


def show(name: str, rows: list[tuple[dict[str, float], bool]]) -> None:
    right = np.array([r for _, r in rows], dtype=bool)
    print(f"\n== {name}: {len(rows)} regions, {right.mean():.2f} right; AUROC right vs wrong (>= 0.9 wanted)")
    for key in rows[0][0]:
        value = auroc(np.array([f[key] for f, _ in rows]), right)
        print(f"  {key:34s} {'   -  ' if value is None else f'{value:6.3f}'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["watch", "basicmotions"])
    parser.add_argument("--members", type=int, default=3, help="models per fold for the bagged ensemble")
    parser.add_argument("--passes", type=int, default=8, help="MC-dropout passes")
    parser.add_argument("--epochs", type=int, default=0, help="cap on training epochs (0: the model's own)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    every: list[tuple[dict[str, float], bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = SeriesSet(name)
            rows = [
                r for fold in range(len(FOLDS[name])) for r in run_fold(data, name, fold, args, Path(tmp))
            ]
            show(name, rows)
            every += rows
    if len(args.datasets) > 1:
        show("all time series", every)


if __name__ == "__main__":
    main()
