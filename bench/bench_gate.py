"""The held-out gate on real recordings: does it let good candidates serve, stop a label-shuffled one, and
what does it cost?

A project grows one annotated task at a time (basicmotions: 8 tasks, watch: 7 subjects); after each, the
project trains through `TemporalBackend.train_project`, exactly as a webhook would have it. Each row shows the
gate's verdict with the candidate's, the serving version's and the constant baseline's macro-F1, the fit time
and the gate's extra time (data checks + two models predicting the scored tasks). At the end the labels of
every training task are permuted (a careless annotator) and the project trains once more: the gate should
reject that candidate. False rejections of the honest steps are counted.
Run: `.venv/bin/python -m bench.bench_gate [--datasets basicmotions watch] [--epochs 15]`
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_timeseries_quality import DATA, config_for
from control_models.base import AnnotatedTask
from control_models.timeseries_labels import TimeSeriesLabelsModel
from model import TemporalBackend
from utils.service.settings import Settings


class TimedTimeSeriesModel(TimeSeriesLabelsModel):
    """The real model, timing its own fit so the gate's share of a training can be told apart."""

    fit_seconds = 0.0

    def fit(self, tasks: list[AnnotatedTask], **options: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().fit(tasks, **options)
        finally:
            TimedTimeSeriesModel.fit_seconds = time.perf_counter() - started


def permuted(regions: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """Every label replaced by the next one of the config: a consistent but wrong labelling."""
    shift = {label: labels[(i + 1) % len(labels)] for i, label in enumerate(labels)}
    out = []
    for region in regions:
        value = dict(region["value"])
        value["timeserieslabels"] = [shift.get(label, label) for label in value.get("timeserieslabels", [])]
        out.append({**region, "value": value})
    return out


def annotate(backend: TemporalBackend, task_id: int, data: dict, regions: list[dict]) -> None:
    annotation = {"id": task_id, "task": task_id, "was_cancelled": False, "result": regions}
    backend.annotations.upsert("1", annotation, {"id": task_id, "data": data})


def train_and_show(backend: TemporalBackend, step: str) -> dict[str, Any]:
    started = time.perf_counter()
    outcome = backend.train_project("1")["metrics"]["label"]
    total = time.perf_counter() - started
    gate = outcome.get("gate") or {}

    def f1(key: str) -> str:
        return f"{gate[key]:.3f}" if gate.get(key) is not None else "  -  "

    verdict = "refused" if "gate" not in outcome else ("serves" if gate["accepted"] else "REJECTED")
    print(
        f"  {step:15s} {verdict:8s} candidate {f1('candidate_f1')} baseline {f1('baseline_f1')} "
        f"on {gate.get('scored_on', '-'):14s} held out {gate.get('held_out_tasks')}; vs serving: candidate "
        f"{f1('candidate_f1_compared')} serving {f1('serving_f1')} on {gate.get('compared_tasks')}"
        f"  fit {TimedTimeSeriesModel.fit_seconds:6.1f} s  gate +{total - TimedTimeSeriesModel.fit_seconds:5.1f} s",
        flush=True,
    )
    return outcome


def run(dataset: str, epochs: int, tmp: Path) -> tuple[int, int, bool]:
    """Returns (honest steps, falsely rejected honest steps, whether the permuted labels were rejected)."""
    settings = Settings.from_env(
        {
            "MODEL_DIR": str(tmp / dataset / "models"),
            "CACHE_DIR": str(tmp / dataset / "cache"),
            "MEDIA_ROOTS": str(DATA),
            "TORCH_THREADS": "1",
            "TRAIN_EPOCHS": str(epochs),
        }
    )
    backend = TemporalBackend(settings, control_classes=[TimedTimeSeriesModel])
    config = config_for(dataset)
    backend.setup("1", config)
    labels = json.loads((DATA / dataset / "ground_truth.json").read_text())["info"]["labels"]
    tasks = json.loads((DATA / dataset / "tasks.json").read_text())
    print(f"\n== {dataset}: {len(tasks)} tasks arrive one by one, {epochs} epochs", flush=True)
    honest, false_rejections = 0, 0
    for task_id, task in enumerate(tasks, start=1):
        data = {"csv_url": str(DATA / dataset / task["data"]["csv_url"])}
        annotate(backend, task_id, data, task["annotations"][0]["result"])
        outcome = train_and_show(backend, f"{task_id} task{'s' if task_id > 1 else ''}")
        honest += 1
        false_rejections += bool(outcome.get("gate")) and not outcome["gate"]["accepted"]
    held_out = set(outcome["gate"]["held_out_tasks"]) if outcome.get("gate") else set()
    for task_id, task in enumerate(tasks, start=1):
        if task_id not in held_out:
            data = {"csv_url": str(DATA / dataset / task["data"]["csv_url"])}
            annotate(backend, task_id, data, permuted(task["annotations"][0]["result"], labels))
    shuffled = train_and_show(backend, "labels permuted")
    stopped = bool(shuffled.get("gate")) and not shuffled["gate"]["accepted"]
    return honest, false_rejections, stopped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["basicmotions", "watch"])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        summary = {name: run(name, args.epochs, Path(tmp)) for name in args.datasets}
    print("\n== summary")
    for name, (honest, false_rejections, stopped) in summary.items():
        print(
            f"  {name:12s} honest trainings {honest}, falsely rejected {false_rejections}, "
            f"permuted labels {'rejected' if stopped else 'NOT rejected'}"
        )


if __name__ == "__main__":
    main()
