"""Active learning: does labelling the lowest-score task next beat labelling in random order?

A simulated annotator labels tasks from a pool (short slices of the training recordings); after every new
annotation the real control model trains afresh on all labelled tasks, as the service retrains on each
annotation, and is scored (macro-F1, mean over the test recordings, which are never in the pool). The "lowest
score" annotator then asks the model for the remaining pool tasks' scores (as /predict gives them to Label
Studio) and labels the lowest next; the "random" one follows a seeded random order. Both start from the same
two random tasks (with no model yet, there are no scores to sort by).
Datasets: the spliced videos (pool: 2-second (50-frame) slices of videos 0-5, about 40 tasks, test: videos
6-7; frame features are cached) and the watch recordings (pool: ~2-exercise slices of subjects 1-5, test: subjects 6-7).
Printed: macro-F1 after each k (mean and standard deviation over seeds), and how many annotations each
order needs, on the mean curve, to reach the random order's final mean macro-F1 (target: lowest-score first
needs <= 70% on at least one dataset), and 95% of it (the final one is often near the ceiling, where a point
of noise decides).
Run: `.venv/bin/python -m bench.bench_active_learning [--datasets video watch] [--seeds 0 1] [--epochs 20]` (`--epochs` caps time-series training; video trains as the service does)
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.chunked_tasks import Dataset, SeriesSet, VideoSet  # noqa: E402

SETUP = {  # pool recordings, slice length, test recordings, first tasks, step, budget
    "video": ([f"spliced_train{i}" for i in range(6)], 50, ["spliced_train6", "spliced_train7"], 2, 1, 12),
    "watch": (
        [f"watch_subject0{i}.csv" for i in range(1, 6)],
        4400,
        ["watch_subject06.csv", "watch_subject07.csv"],
        2,
        1,
        12,
    ),
}


class Run:
    """One annotator order on one dataset and seed; each training starts a fresh model."""

    def __init__(self, data: Dataset, name: str, seed: int, epochs: int | None, tmp: Path):
        pool_names, length, test_names, _, _, _ = SETUP[name]
        self.data, self.name, self.seed, self.epochs, self.tmp = data, name, seed, epochs, tmp
        self.pool = data.chunks(pool_names, length)
        self.test = [data.task(10_000 + i, *c) for i, c in enumerate(data.chunks(test_names, 10**9))]
        self.trainings = 0

    def train(self, labelled: list[int]):
        self.trainings += 1
        model = self.data.model(self.tmp, f"{self.name}-{self.seed}-{id(self)}-{self.trainings}")
        if self.epochs and self.data.kind == "time series":
            model.train_config = replace(model.train_config, epochs=self.epochs)
        model.train_config = replace(model.train_config, seed=self.seed)
        model.fit([self.data.task(i, *self.pool[i]) for i in labelled])
        f1 = float(np.mean([self.data.evaluate(model, t).macro_f1 for t in self.test]))
        return model, f1

    def curve(self, order: str) -> list[tuple[int, float]]:
        _, _, _, first, step, budget = SETUP[self.name]
        rng = np.random.default_rng(self.seed)
        permutation = [int(i) for i in rng.permutation(len(self.pool))]
        labelled, points = permutation[:first], []
        while True:
            model, f1 = self.train(labelled)
            points.append((len(labelled), f1))
            print(
                f"    {self.name} seed {self.seed} {order:12s} k={len(labelled):2d} macro-F1 {f1:.3f}",
                flush=True,
            )
            remaining = [i for i in permutation if i not in labelled]
            if len(labelled) >= budget or not remaining:
                return points
            if order == "random":
                labelled += remaining[:step]
            else:
                scores = {
                    i: self.data.evaluate(model, self.data.task(i, *self.pool[i], annotated=False)).score
                    for i in remaining
                }
                labelled += sorted(remaining, key=lambda i: scores[i])[:step]


def needed(points: list[tuple[int, float]], target: float) -> int | None:
    """The fewest annotations after which the curve reaches `target` (None: never)."""
    return next((k for k, f1 in points if f1 >= target - 1e-9), None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=list(SETUP))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--epochs", type=int, default=20, help="time-series training epochs (0: the model's own)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data = VideoSet() if name == "video" else SeriesSet(name)
            curves: dict[str, list[list[tuple[int, float]]]] = {"lowest score": [], "random": []}
            for seed in args.seeds:
                for order in curves:
                    curves[order].append(Run(data, name, seed, args.epochs, Path(tmp)).curve(order))
            mean = {
                order: [(runs[0][j][0], float(np.mean([r[j][1] for r in runs]))) for j in range(len(runs[0]))]
                for order, runs in curves.items()
            }
            spread = {
                order: [float(np.std([r[j][1] for r in runs])) for j in range(len(runs[0]))]
                for order, runs in curves.items()
            }
            final_k, final_f1 = mean["random"][-1]
            print(
                f"\n== {name}: {len(Run(data, name, 0, None, Path(tmp)).pool)} pool tasks, seeds {args.seeds}"
            )
            print("  k   " + "  ".join(f"{order + ' (sd)':>20s}" for order in mean))
            for j, (k, _) in enumerate(mean["random"]):
                print(
                    f"  {k:2d}  "
                    + "  ".join(f"{mean[order][j][1]:13.3f} ({spread[order][j]:.3f})" for order in mean)
                )
            for target, what in ((final_f1, "random's final"), (0.95 * final_f1, "95% of random's final")):
                for order, points in mean.items():
                    k = needed(points, target)
                    share = f"{k / final_k:.0%}" if k else "never"
                    print(
                        f"  {order:12s} reaches {what} {target:.3f} after {k} annotations ({share} of {final_k})"
                    )
            per_seed = [
                needed(lowest, random[-1][1])
                for lowest, random in zip(curves["lowest score"], curves["random"], strict=True)
            ]
            print(f"  per seed, lowest score reaches that seed's random final after: {per_seed}")


if __name__ == "__main__":
    main()
