"""Segmentation quality of TimeSeriesLabels on real recordings, against a reference-style baseline.

Goes through `TimeSeriesLabelsModel.fit` / `predict_regions` exactly as the HTTP API does. Prints per-sample
accuracy, macro-F1 over labels and segment F1 at IoU 0.5 for
- basicmotions: train on train*, test on test*;
- watch: test on subjects 6-7, train on subjects 1 / 1-3 / 1-5 (a learning curve);
with the baseline trained on the same split in the same run. Watch subjects 1-5 are trained once per seed
of `--seeds` (cross-subject results vary with the seed), followed by the worst and mean macro-F1.
Run: `.venv/bin/python -m bench.bench_timeseries_quality [--quick] [--seeds 0 1 2] [--patience 10]`
(--quick: basicmotions + watch subjects 1-5 only; --patience: another stop rule, to compare with the net's own).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from label_studio_sdk.label_interface import LabelInterface

from bench.bench_timeseries_reference import fit_reference, predict_reference
from control_models.base import AnnotatedTask, ModelContext
from control_models.timeseries_labels import TimeSeriesLabelsModel
from fixtures.data import SHARED_DATA
from utils.labelstudio.media import MediaResolver
from utils.service.model_store import ModelStore
from utils.service.settings import Settings
from utils.timeseries.reader import SeriesSpec, read_series
from utils.timeseries.regions import regions_to_targets
from utils.timeseries.time_axis import TimeAxis

DATA = SHARED_DATA / "timeseries"


def config_for(dataset: str) -> str:
    info = json.loads((DATA / dataset / "ground_truth.json").read_text())
    first = next(iter(info["files"].values()))
    channels = "".join(f'<Channel column="{c}"/>' for c in first["channels"])
    labels = "".join(f'<Label value="{label}"/>' for label in info["info"]["labels"])
    return (
        f'<View><TimeSeries name="ts" valueType="url" value="$csv_url" timeColumn="time">{channels}</TimeSeries>'
        f'<TimeSeriesLabels name="label" toName="ts">{labels}</TimeSeriesLabels></View>'
    )


def load_tasks(dataset: str) -> dict[str, AnnotatedTask]:
    tasks = json.loads((DATA / dataset / "tasks.json").read_text())
    out = {}
    for i, task in enumerate(tasks, start=1):
        name = task["data"]["csv_url"]
        data = {"csv_url": str(DATA / dataset / name)}
        out[name] = AnnotatedTask(task_id=i, data=data, regions=task["annotations"][0]["result"])
    return out


def class_ids(regions: list[dict], times: np.ndarray, labels: list[str]) -> np.ndarray:
    hot = regions_to_targets(regions, times, labels, TimeAxis(), "timeserieslabels").targets
    return np.where(hot.any(1), hot.argmax(1) + 1, 0)


def runs_of(ids: np.ndarray) -> list[tuple[int, int, int]]:
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts, ends = np.r_[0, change], np.r_[change, len(ids)]
    return [(int(ids[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True) if ids[s] != 0]


def scores(pred: np.ndarray, truth: np.ndarray, n_labels: int) -> dict[str, float]:
    """Sample accuracy, macro-F1 over labels (1..n), segment F1 at IoU >= 0.5 (same label, one-to-one)."""
    f1s = []
    for c in range(1, n_labels + 1):
        tp, p, t = ((pred == c) & (truth == c)).sum(), (pred == c).sum(), (truth == c).sum()
        if t:
            f1s.append(2 * tp / max(p + t, 1))
    pred_segs, true_segs = runs_of(pred), runs_of(truth)
    used, matched = set(), 0
    for label, s, e in true_segs:
        for j, (pl, ps, pe) in enumerate(pred_segs):
            inter = max(0, min(e, pe) - max(s, ps))
            if j not in used and pl == label and inter / (max(e, pe) - min(s, ps)) >= 0.5:
                used.add(j)
                matched += 1
                break
    precision, recall = matched / max(len(pred_segs), 1), matched / max(len(true_segs), 1)
    return {
        "accuracy": float((pred == truth).mean()),
        "macro_f1": float(np.mean(f1s)),
        "segment_f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "segments": len(pred_segs),
        "true_segments": len(true_segs),
    }


def run_model_factory(dataset: str, name: str, tmp: Path) -> TimeSeriesLabelsModel:
    """The control model as model.py builds it for a project with this dataset's config (media may be
    read from the shared data and from `tmp`)."""
    settings = Settings.from_env(
        {"MODEL_DIR": str(tmp / "models"), "CACHE_DIR": str(tmp / "cache"), "TORCH_THREADS": "1"}
    )
    control = list(LabelInterface(config_for(dataset)).controls)[0]
    context = ModelContext(
        store=ModelStore(settings.model_dir).control_store(name, "label"),
        media=MediaResolver(cache_dir=settings.cache_dir, local_roots=(DATA, tmp.resolve())),
        settings=settings,
    )
    return TimeSeriesLabelsModel.create(control, context)


def run_ours(
    dataset: str,
    train: list[AnnotatedTask],
    test: list[AnnotatedTask],
    tmp: Path,
    seed: int = 0,
    patience: int | None = None,
) -> dict:
    model = run_model_factory(dataset, f"{dataset}-{len(train)}-{seed}", tmp)
    config = model.train_config
    model.train_config = replace(
        config, seed=seed, patience=config.patience if patience is None else patience
    )
    started = time.monotonic()
    report = model.fit(train)
    fit_s = time.monotonic() - started
    preds, truths = [], []
    started = time.monotonic()
    for task in test:
        regions = model.predict_regions({"id": task.task_id, "data": task.data})
        times = model.load_series({"id": task.task_id, "data": task.data}).times
        preds.append(class_ids(regions, times, model.labels))
        truths.append(class_ids(task.regions, times, model.labels))
    predict_s = time.monotonic() - started
    result = scores(np.concatenate(preds), np.concatenate(truths), len(model.labels))
    segment_scores = [
        scores(p, t, len(model.labels))["segment_f1"] for p, t in zip(preds, truths, strict=True)
    ]
    return {
        **result,
        "segment_f1_per_task": float(np.mean(segment_scores)),
        "fit_s": fit_s,
        "predict_s": predict_s,
        "epochs": report.get("epochs"),
    }


def run_reference(dataset: str, train: list[AnnotatedTask], test: list[AnnotatedTask]) -> dict:
    info = json.loads((DATA / dataset / "ground_truth.json").read_text())
    labels = info["info"]["labels"]
    first = next(iter(info["files"].values()))
    spec = SeriesSpec(time_column="time", channels=tuple(first["channels"]))

    def load(task: AnnotatedTask) -> tuple[np.ndarray, np.ndarray]:
        series = read_series(Path(task.data["csv_url"]), spec)
        return series.values, class_ids(task.regions, series.times, labels)

    started = time.monotonic()
    pairs = [load(t) for t in train]
    model = fit_reference([p[0] for p in pairs], [p[1] for p in pairs], len(labels) + 1)
    fit_s = time.monotonic() - started
    preds, truths = [], []
    for task in test:
        values, truth = load(task)
        preds.append(predict_reference(model, values))
        truths.append(truth)
    result = scores(np.concatenate(preds), np.concatenate(truths), len(labels))
    segment_scores = [scores(p, t, len(labels))["segment_f1"] for p, t in zip(preds, truths, strict=True)]
    return {**result, "segment_f1_per_task": float(np.mean(segment_scores)), "fit_s": fit_s}


SCORE_KEYS = (
    "accuracy",
    "macro_f1",
    "segment_f1",
    "segment_f1_per_task",
    "segments",
    "true_segments",
    "fit_s",
)


def show(name: str, ours: dict, ref: dict) -> None:
    print(f"\n== {name}")
    for key in SCORE_KEYS:
        a, b = ours[key], ref[key]
        ratio = f"x{a / b:.2f}" if isinstance(b, float) and b > 0 else ""
        print(f"  {key:20s} ours {a:9.3f}   reference {b:9.3f}   {ratio}")
    print(f"  epochs (ours) {ours['epochs']}, predict {ours['predict_s']:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds for watch 1-5")
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="held-out checks without a gain before a stop (the net's own)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    torch.set_num_threads(1)
    empty = dict.fromkeys(SCORE_KEYS, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        bm = load_tasks("basicmotions")
        train = [t for n, t in sorted(bm.items()) if n.startswith("basicmotions_train")]
        test = [t for n, t in sorted(bm.items()) if n.startswith("basicmotions_test")]
        ours = run_ours("basicmotions", train, test, Path(tmp), patience=args.patience)
        ref = empty if args.no_reference else run_reference("basicmotions", train, test)
        show("basicmotions (train* -> test*)", ours, ref)
        watch = load_tasks("watch")
        test = [watch[f"watch_subject0{i}.csv"] for i in (6, 7)]
        curve = [(1, 2, 3, 4, 5)] if args.quick else [(1,), (1, 2, 3), (1, 2, 3, 4, 5)]
        for subjects in curve:
            train = [watch[f"watch_subject0{i}.csv"] for i in subjects]
            ref = empty if args.no_reference else run_reference("watch", train, test)
            seeds = args.seeds if len(subjects) == 5 else [0]
            f1s = []
            for seed in seeds:
                ours = run_ours("watch", train, test, Path(tmp), seed, args.patience)
                f1s.append(ours["macro_f1"])
                show(f"watch: train subjects {subjects} -> test subjects (6, 7), seed {seed}", ours, ref)
            if len(seeds) > 1:
                print(f"  macro_f1 over seeds {seeds}: worst {min(f1s):.3f}, mean {np.mean(f1s):.3f}")


if __name__ == "__main__":
    main()
