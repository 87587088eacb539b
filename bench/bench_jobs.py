"""Job engines under load: /webhook, /health and /predict latency (p50/p99) with 20 clients while two projects
train, embedded engine vs Redis + RQ engine; and training throughput of the Redis engine with one vs two
workers on four projects. Trainings are CPU-bound stand-ins (torch matmuls for `--burn` seconds, one torch
thread) from the test control model, so the figures measure the engines, not a model.

Run: .venv/bin/python -m bench.bench_jobs [--seconds 10] [--burn 3]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

from fixtures.app_factory import VIDEO_CONFIG, annotation_event
from fixtures.job_cluster import Cluster
from fixtures.redis_server import RedisServer
from fixtures.servers import Server, wait_until


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def jobs_overview(web: Server) -> dict:
    return requests.get(f"{web.url}/health", timeout=10).json()["jobs"]


def training_states(web: Server) -> dict:
    return requests.get(f"{web.url}/health", timeout=10).json()["training"]


def load(web: Server, media: Path, seconds: float, clients: int = 20) -> dict[str, list[float]]:
    """`clients` threads calling /webhook (projects 1 and 2, which keeps both training), /health, /predict."""
    latencies: dict[str, list[float]] = defaultdict(list)
    counter = itertools.count(1000)
    predict = {
        "tasks": [{"id": 1, "data": {"video": str(media)}}],
        "project": "1.1",
        "label_config": VIDEO_CONFIG,
    }
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        for route in itertools.cycle(["/webhook", "/health", "/predict"][index % 3 :] + ["/webhook"]):
            if time.monotonic() > deadline:
                return
            n = next(counter)
            started = time.perf_counter()
            if route == "/webhook":
                event = annotation_event("ANNOTATION_CREATED", n, n, "Ball", project_id=1 + n % 2)
                response = session.post(f"{web.url}/webhook", json=event, timeout=30)
            elif route == "/health":
                response = session.get(f"{web.url}/health", timeout=30)
            else:
                response = session.post(f"{web.url}/predict", json=predict, timeout=30)
            response.raise_for_status()
            latencies[route].append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def latency_run(engine: str, root: Path, seconds: float, burn: str) -> None:
    """One engine under load; `burn="0"`: trainings take no time (the baseline of the same machine)."""
    redis_server = RedisServer(root / "redis").start()
    cluster = Cluster(root, redis_server)
    media = root / "media" / "clip.mp4"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"\0" * 1024)
    env = {"RECORDING_FIT_BURN_SECONDS": burn, "MEDIA_ROOTS": str(media.parent)}
    try:
        if engine == "embedded":
            web = cluster.web(workers=2, REDIS_URL="", **env)
        else:
            web = cluster.web(workers=2, **env)
            cluster.worker(**env)
            cluster.worker(**env)
            wait_until(lambda: len(jobs_overview(web)["workers"]) == 2, 180, "two workers")
        for project in (1, 2):  # both projects training before the clients start
            event = annotation_event("ANNOTATION_CREATED", project, project, "Ball", project_id=project)
            requests.post(f"{web.url}/webhook", json=event, timeout=30).raise_for_status()
        # (embedded: one training thread per web process, so the two may also run one after the other)
        wait_until(
            lambda: any(s["state"] == "running" or s["runs"] for s in training_states(web).values()),
            120,
            "a training",
        )
        latencies = load(web, media, seconds)
        runs = sum(s["runs"] for s in training_states(web).values())
        for route in ("/webhook", "/health", "/predict"):
            values = latencies[route]
            print(
                f"{engine:8s} burn={burn:4s} {route:9s} n={len(values):5d} p50={percentile(values, 0.5):7.1f} ms "
                f"p99={percentile(values, 0.99):7.1f} ms"
            )
        print(f"{engine:8s} trainings finished during the load: {runs}")
    finally:
        cluster.stop()
        redis_server.stop()


def throughput_run(workers: int, root: Path, burn: str) -> float:
    redis_server = RedisServer(root / "redis").start()
    cluster = Cluster(root, redis_server)
    try:
        web = cluster.web(workers=1)
        for _ in range(workers):
            cluster.worker(RECORDING_FIT_BURN_SECONDS=burn)
        wait_until(lambda: len(jobs_overview(web)["workers"]) == workers, 180, "workers")
        started = time.perf_counter()
        for project in (1, 2, 3, 4):
            event = annotation_event("ANNOTATION_CREATED", project, project, "Ball", project_id=project)
            requests.post(f"{web.url}/webhook", json=event, timeout=30).raise_for_status()

        def all_trained() -> bool:
            states = training_states(web)
            return len(states) == 4 and all(s["trained"] == s["requested"] == 1 for s in states.values())

        wait_until(all_trained, 300, "four projects trained", interval_s=0.1)
        return time.perf_counter() - started
    finally:
        cluster.stop()
        redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per engine")
    parser.add_argument("--burn", type=float, default=3.0, help="CPU seconds per training")
    args = parser.parse_args()
    burn = str(args.burn)
    print(f"20 clients for {args.seconds:.0f} s while projects 1 and 2 train ({burn} CPU s per training;")
    print("burn=0: the same load with instant trainings, the machine's baseline)")
    for engine in ("embedded", "redis"):
        for load_burn in ("0", burn):
            with tempfile.TemporaryDirectory() as tmp:
                latency_run(engine, Path(tmp), args.seconds, load_burn)
    times = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            times[workers] = throughput_run(workers, Path(tmp), burn)
        print(f"redis    {workers} worker(s): four projects trained in {times[workers]:.1f} s")
    print(f"speed-up two workers vs one: {times[1] / times[2]:.2f}x")


if __name__ == "__main__":
    main()
