"""A small test-only control model: it learns each label's share of annotated frames, predicts the most
frequent label, and logs every fit to a file so tests can count and time trainings across processes."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import torch

from control_models.base import AnnotatedTask, ControlModel, Progress


class RecordingTimelineModel(ControlModel):
    tag = "TimelineLabels"
    object_tags = ("Video",)
    fit_seconds = 0.0  # tests raise it to keep a training busy
    predict_estimate_s = 0.0  # tests raise it to make a task "long media"

    def predict_seconds(self, task: dict[str, Any]) -> float:
        return self.predict_estimate_s

    def fit_log(self) -> str:
        return str(self.context.settings.model_dir / "fit-log.jsonl")

    def predict_regions(self, task: dict[str, Any], progress: Progress | None = None) -> list[dict[str, Any]]:
        self.context.media.resolve(self.task_value(task), task.get("id"))
        loaded = self.context.store.load()
        if loaded is None:
            return []
        state, meta = loaded
        label = meta["labels"][int(torch.argmax(state["counts"]))]
        return [self.region({"ranges": [{"start": 1, "end": 10}], "timelinelabels": [label]}, 0.9)]

    def fit(self, tasks: list[AnnotatedTask]) -> dict[str, Any]:
        started = time.time()
        counts: Counter[str] = Counter()
        for task in tasks:
            for region in task.regions:
                for label in region["value"].get("timelinelabels", []):
                    counts[label] += 1
        # a subprocess (gunicorn, RQ worker) gets its delay from the environment
        time.sleep(float(os.environ.get("RECORDING_FIT_SECONDS", self.fit_seconds)))
        burn_until = time.time() + float(os.environ.get("RECORDING_FIT_BURN_SECONDS", "0"))
        matrix = torch.rand(256, 256)
        while time.time() < burn_until:  # a CPU-bound training, for benchmarks
            matrix = torch.tanh(matrix @ matrix)
        state = {"counts": torch.tensor([float(counts[label]) for label in self.labels])}
        self.context.store.save(state, {"labels": self.labels, "task_ids": [t.task_id for t in tasks]})
        with open(self.fit_log(), "a") as log:
            entry = {
                "pid": os.getpid(),
                "project": self.context.store.root.parent.parent.name,  # <project>/controls/<control>
                "start": started,
                "end": time.time(),
            }
            log.write(json.dumps(entry) + "\n")
        return {"tasks": len(tasks), "labels": dict(counts)}


class RecordingTimeSeriesModel(RecordingTimelineModel):
    tag = "TimeSeriesLabels"
    object_tags = ("TimeSeries",)

    def predict_regions(self, task: dict[str, Any], progress: Progress | None = None) -> list[dict[str, Any]]:
        self.context.media.resolve(self.task_value(task), task.get("id"))
        return []
