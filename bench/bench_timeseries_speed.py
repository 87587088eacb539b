"""Training time on all 7 watch subjects and predict latency for a 30,000-row CSV, through
`TimeSeriesLabelsModel.fit` / `predict_regions`, with the reference-style baseline timed in the same run.
Run: `.venv/bin/python -m bench.bench_timeseries_speed` (TORCH_THREADS=1 suits 2 shared cores)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.bench_timeseries_quality import DATA, class_ids, load_tasks, run_model_factory
from bench.bench_timeseries_reference import fit_reference, predict_reference
from utils.timeseries.reader import SeriesSpec, read_series

ROWS = 30_000


def main() -> None:
    torch.set_num_threads(1)
    watch = load_tasks("watch")
    tasks = [watch[f"watch_subject0{i}.csv"] for i in range(1, 8)]
    with tempfile.TemporaryDirectory() as tmp:
        model = run_model_factory("watch", "speed", Path(tmp))
        started = time.monotonic()
        report = model.fit(tasks)
        ours_fit = time.monotonic() - started
        print(f"training on 7 watch subjects: {ours_fit:.1f} s ({report['epochs']} epochs)", flush=True)

        frames = [pd.read_csv(DATA / "watch" / f"watch_subject0{i}.csv") for i in (1, 2)]
        big = pd.concat(frames, ignore_index=True).iloc[:ROWS].copy()
        big["time"] = np.round(np.arange(len(big)) * 0.02, 2)
        csv = Path(tmp) / "rows30k.csv"
        big.to_csv(csv, index=False)
        task = {"id": 1, "data": {"csv_url": str(csv)}}
        model.predict_regions(task)  # warm-up: load weights
        ours = []
        for _ in range(3):
            started = time.monotonic()
            regions = model.predict_regions(task)
            ours.append(time.monotonic() - started)
        print(
            f"predict {ROWS} rows: median {statistics.median(ours):.2f} s ({len(regions)} segments)",
            flush=True,
        )

        spec = SeriesSpec(time_column="time", channels=("ax", "ay", "az", "wx", "wy", "wz"))
        labels = model.labels
        started = time.monotonic()
        pairs = []
        for t in tasks:
            series = read_series(Path(t.data["csv_url"]), spec)
            pairs.append((series.values, class_ids(t.regions, series.times, labels)))
        reference = fit_reference([p[0] for p in pairs], [p[1] for p in pairs], len(labels) + 1)
        ref_fit = time.monotonic() - started
        values = read_series(csv, spec).values
        ref = []
        for _ in range(3):
            started = time.monotonic()
            predict_reference(reference, values)
            ref.append(time.monotonic() - started)
        print(f"reference: training {ref_fit:.1f} s, predict median {statistics.median(ref):.2f} s")
        print(
            f"ratios ours/reference: training x{ours_fit / ref_fit:.2f}, predict x{statistics.median(ours) / statistics.median(ref):.2f}"
        )


if __name__ == "__main__":
    main()
