"""Generated time-series tasks for tests of training, the gate and versions: one channel whose level
rises for 'Up' and falls for 'Down', annotated (or mislabelled) on purpose."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from model import TemporalBackend

TS_CONFIG = """<View>
  <TimeSeries name="ts" valueType="url" value="$csv" timeColumn="t"><Channel column="x"/></TimeSeries>
  <TimeSeriesLabels name="label" toName="ts" model_classifier_epochs="20" model_classifier_sequence_size="64"
                    model_classifier_hidden_size="16">
    <Label value="Up"/><Label value="Down"/>
  </TimeSeriesLabels>
</View>"""
SEGMENTS = {"Up": (40, 99), "Down": (140, 199)}  # inclusive sample ranges of each label in every series


def write_series(path: Path, seed: int, scale: float = 1.0) -> Path:
    """240 samples: 'Up' is a raised level, 'Down' a lowered one, noise elsewhere; `scale` multiplies it all."""
    rng = np.random.default_rng(seed)
    x = 0.15 * rng.standard_normal(240)
    x[40:100] += 1.5
    x[140:200] -= 1.5
    rows = "\n".join(f"{t},{float(v * scale)!r}" for t, v in enumerate(x))
    path.write_text(f"t,x\n{rows}\n")
    return path


def ts_regions(swap: bool = False) -> list[dict[str, Any]]:
    names = {"Up": "Down", "Down": "Up"} if swap else {}
    return [
        {
            "from_name": "label",
            "to_name": "ts",
            "type": "timeserieslabels",
            "value": {
                "start": start,
                "end": end,
                "instant": False,
                "timeserieslabels": [names.get(label, label)],
            },
        }
        for label, (start, end) in SEGMENTS.items()
    ]


def annotate(backend: TemporalBackend, config: str, task_id: int, data: dict, regions: list[dict]) -> None:
    """Record an annotation as a webhook does, without starting a training."""
    annotation = {"id": task_id, "task": task_id, "was_cancelled": False, "result": regions}
    backend.annotations.upsert("1", annotation, {"id": task_id, "data": data})
    backend.setup("1", config)


def annotate_series(backend: TemporalBackend, media: Path, task_ids: Iterable[int]) -> dict[int, dict]:
    """Well-annotated series tasks; returns their data by task id."""
    tasks = {i: {"csv": str(write_series(media / f"s{i}.csv", i))} for i in task_ids}
    for task_id, data in tasks.items():
        annotate(backend, TS_CONFIG, task_id, data, ts_regions())
    return tasks
