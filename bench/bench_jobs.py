"""Job engines under load: /webhook, /health and /predict latency (p50/p99) with 20 clients while two projects
train, embedded engine vs Redis + RQ engine; and training throughput of the Redis engine with one vs two
workers on four projects. Trainings are CPU-bound stand-ins (torch matmuls for `--burn` seconds, one torch
thread) from the test control model, so the figures measure the engines, not a model.

The clients run in processes of their own (bench/http_load.py), so they do not share the GIL with this one;
the web processes' CPU per request is printed beside the latencies, and the load average before each run
(other work on the machine shows there).

Closed loop (the default) the clients saturate the 2 cores they share with the service, so the latencies
there measure the machine's saturation; `--rate R` paces each client at R requests/s instead (latency counted
from when a request was due), which measures the service at a given offered load.

Run: .venv/bin/python -m bench.bench_jobs [--seconds 10] [--burn 3] [--clients 5 20] [--rate 10]
     [--engines redis]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import psutil
import requests

from bench.http_load import Request, percentile, run_load
from fixtures.app_factory import VIDEO_CONFIG, annotation_event
from fixtures.job_cluster import Cluster
from fixtures.redis_server import RedisServer
from fixtures.servers import Server, wait_until


def jobs_overview(web: Server) -> dict:
    return requests.get(f"{web.url}/health", timeout=10).json()["jobs"]


def training_states(web: Server) -> dict:
    return requests.get(f"{web.url}/health", timeout=10).json()["training"]


def mixed_request(media: str, index: int, number: int) -> Request:
    """Client `index`'s request `number`: /webhook (projects 1 and 2, which keeps both training), /health and
    /predict in turn, every other one a webhook; each webhook a new annotation."""
    routes = ["/webhook", "/health", "/predict"][index % 3 :] + ["/webhook"]
    route = routes[number % len(routes)]
    if route == "/health":
        return route, "GET", None
    if route == "/predict":
        task = {"id": 1, "data": {"video": media}}
        return route, "POST", {"tasks": [task], "project": "1.1", "label_config": VIDEO_CONFIG}
    n = 1000 + index * 1_000_000 + number
    return route, "POST", annotation_event("ANNOTATION_CREATED", n, n, "Ball", project_id=1 + n % 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (gunicorn's master and workers)."""
    parent = psutil.Process(pid)
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def latency_run(
    engine: str,
    root: Path,
    seconds: float,
    burn: str,
    clients: int,
    rate: float,
    web_workers: int,
    threads: int,
) -> None:
    """One engine under load; `burn="0"`: trainings take no time (the baseline of the same machine)."""
    redis_server = RedisServer(root / "redis").start()
    cluster = Cluster(root, redis_server)
    media = root / "media" / "clip.mp4"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"\0" * 1024)
    env = {"RECORDING_FIT_BURN_SECONDS": burn, "MEDIA_ROOTS": str(media.parent), "THREADS": str(threads)}
    try:
        if engine == "embedded":
            web = cluster.web(workers=web_workers, REDIS_URL="", **env)
        else:
            web = cluster.web(workers=web_workers, **env)
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
        web_cpu = cpu_seconds(web.process.pid)
        load_avg = os.getloadavg()[0]
        latencies = run_load(web.url, partial(mixed_request, str(media)), clients, seconds, rate=rate)
        web_cpu = cpu_seconds(web.process.pid) - web_cpu
        runs = sum(s["runs"] for s in training_states(web).values())
        requests_served = sum(len(v) for v in latencies.values())
        for route in ("/webhook", "/health", "/predict"):
            values = latencies[route]
            print(
                f"{engine:8s} burn={burn:4s} clients={clients:2d} {route:9s} n={len(values):5d} "
                f"p50={percentile(values, 0.5):7.1f} ms p99={percentile(values, 0.99):7.1f} ms"
            )
        print(
            f"{engine:8s} served {requests_served / seconds:.0f} requests/s"
            + (f" (offered {clients * rate:.0f})" if rate else " (closed loop)")
            + f"; web processes: {web_cpu / max(1, requests_served) * 1000:.1f} CPU ms per request; "
            f"trainings finished during the load: {runs}; load average before: {load_avg:.1f}"
        )
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
    parser.add_argument("--clients", type=int, nargs="+", default=[20], help="client counts to load with")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s per client, paced (default 0: closed loop)"
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker process")
    parser.add_argument("--engines", nargs="+", default=["embedded", "redis"], choices=["embedded", "redis"])
    parser.add_argument("--no-throughput", action="store_true", help="skip the one vs two workers run")
    args = parser.parse_args()
    burn = str(args.burn)
    pacing = f"each sending {args.rate:g} requests/s" if args.rate else "closed loop"
    print(
        f"clients (keep-alive, in 4 processes of their own, {pacing}) for {args.seconds:.0f} s while projects"
        " 1 and 2"
    )
    print(f"train ({burn} CPU s per training; burn=0: the same load with instant trainings, the baseline);")
    print(f"gunicorn: {args.web_workers} worker processes x {args.threads} threads")
    for engine in args.engines:
        for clients in args.clients:
            for load_burn in ("0", burn):
                with tempfile.TemporaryDirectory() as tmp:
                    latency_run(
                        engine,
                        Path(tmp),
                        args.seconds,
                        load_burn,
                        clients,
                        args.rate,
                        args.web_workers,
                        args.threads,
                    )
    if args.no_throughput:
        return
    times = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            times[workers] = throughput_run(workers, Path(tmp), burn)
        print(f"redis    {workers} worker(s): four projects trained in {times[workers]:.1f} s")
    print(f"speed-up two workers vs one: {times[1] / times[2]:.2f}x")


if __name__ == "__main__":
    main()
