"""Held-out quality through the HTTP API on both job engines: basicmotions (train* CSVs annotated by webhook,
test* CSVs predicted by /predict), the real TimeSeriesLabels model, macro-F1 per sample as the e2e tests
score it. The Redis run trains on an RQ worker (`worker.py`), the embedded run in the web process.

Run: .venv/bin/python -m bench.bench_jobs_quality
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests

from fixtures.data import SHARED_DATA
from fixtures.job_cluster import Cluster
from fixtures.redis_server import RedisServer
from fixtures.scoring import macro_f1, sample_sets, truth_samples
from fixtures.servers import wait_until
from fixtures.shared_sets import timeseries_control, timeseries_dataset, timeseries_object


def run(engine: str, root: Path) -> float:
    dataset = timeseries_dataset(SHARED_DATA)
    info = dataset.ground_truth
    channels = next(iter(info["files"].values()))["channels"]
    config = f"<View>{timeseries_object(channels)}{timeseries_control(dataset.labels)}</View>"
    project = {"id": 1, "label_config": config}
    redis_server = RedisServer(root / "redis").start()
    cluster = Cluster(root, redis_server)
    env = {"MEDIA_ROOTS": str(dataset.source)}
    try:
        if engine == "embedded":
            web = cluster.web(workers=1, app="_wsgi:create_app()", REDIS_URL="", **env)
        else:
            web = cluster.web(workers=1, app="_wsgi:create_app()", **env)
            cluster.worker(real_models=True, **env)
        started = time.perf_counter()
        examples = [(name, result) for name, result in dataset.examples() if "train" in name]
        for i, (name, result) in enumerate(examples, start=1):
            event = {
                "action": "ANNOTATION_CREATED",
                "project": project,
                "annotation": {"id": i, "task": i, "result": result, "was_cancelled": False},
                "task": {"id": i, "data": {"csv_url": str(dataset.source / name)}},
            }
            requests.post(f"{web.url}/webhook", json=event, timeout=30).raise_for_status()

        def trained() -> bool:
            state = requests.get(f"{web.url}/health", timeout=10).json()["training"].get("1", {})
            return state.get("state") == "idle" and state.get("trained") == len(examples)

        wait_until(trained, 900, "training", interval_s=1)
        train_s = time.perf_counter() - started
        tests = sorted(name for name in info["files"] if "test" in name)
        tasks = [{"id": 100 + i, "data": {"csv_url": str(dataset.source / n)}} for i, n in enumerate(tests)]
        payload = {"tasks": tasks, "project": "1.1", "label_config": config}
        results = requests.post(f"{web.url}/predict", json=payload, timeout=300).json()["results"]
        hz = info["info"]["sampling_hz"]
        scores = [
            macro_f1(sample_sets(r["result"], "label", hz), truth_samples(info, name))
            for name, r in zip(tests, results, strict=True)
        ]
        score = sum(scores) / len(scores)
        print(
            f"{engine:8s} basicmotions macro-F1 {score:.3f} (per file {[round(s, 3) for s in scores]}), "
            f"trained in {train_s:.0f} s"
        )
        return score
    finally:
        cluster.stop()
        redis_server.stop()


def main() -> None:
    for engine in ("embedded", "redis"):
        with tempfile.TemporaryDirectory() as tmp:
            run(engine, Path(tmp))


if __name__ == "__main__":
    main()
