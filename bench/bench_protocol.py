"""Protocol latency under load: p50/p99 of /health, /setup, /predict and /webhook with 20 concurrent clients
against gunicorn, run the way the README runs it. Prints one line per route.

    .venv/bin/python -m bench.bench_protocol [--requests 400] [--clients 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
CONFIG = (
    '<View><TimeSeries name="ts" valueType="json" value="$series" timeColumn="time">'
    '<Channel column="x"/></TimeSeries><TimeSeriesLabels name="label" toName="ts">'
    '<Label value="up"/><Label value="down"/></TimeSeriesLabels></View>'
)


def series(n: int = 600) -> dict:
    times = [i * 0.1 for i in range(n)]
    return {"time": times, "x": [1.0 if (i // 100) % 2 else -1.0 for i in range(n)]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def requests_for(route: str, i: int) -> tuple[str, str, dict | None]:
    task = {"id": i % 50 + 1, "data": {"series": series()}}
    if route == "/health":
        return "GET", route, None
    if route == "/setup":
        return (
            "POST",
            route,
            {"project": "1.1795235685", "schema": CONFIG, "hostname": "", "access_token": ""},
        )
    if route == "/predict":
        return "POST", route, {"tasks": [task], "project": "1.1795235685", "label_config": CONFIG}
    region = {"start": 10.0, "end": 19.9, "instant": False, "timeserieslabels": ["up"]}
    result = [{"from_name": "label", "to_name": "ts", "type": "timeserieslabels", "value": region}]
    return (
        "POST",
        route,
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 1, "label_config": CONFIG},
            "annotation": {"id": i % 50 + 1, "task": task["id"], "result": result},
            "task": task,
        },
    )


def measure(base: str, route: str, total: int, clients: int) -> list[float]:
    session = requests.Session()

    def one(i: int) -> float:
        method, path, body = requests_for(route, i)
        started = time.perf_counter()
        response = session.request(method, base + path, json=body, timeout=120)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{route}: HTTP {response.status_code} {response.text[:200]}")
        return elapsed

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(total)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": str(args.workers),
            "THREADS": "8",
            "MODEL_DIR": f"{tmp}/models",
            "CACHE_DIR": f"{tmp}/cache",
            "TORCH_THREADS": "1",
            "LOG_LEVEL": "WARNING",
            "YOLO_OFFLINE": "1",
            "YOLO_CONFIG_DIR": f"{tmp}/yolo",
        }
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "_wsgi:app"],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if requests.get(base + "/health", timeout=1).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            print(
                f"gunicorn: {args.workers} workers x 8 threads; {args.clients} clients; {args.requests} requests/route"
            )
            for route in ("/health", "/setup", "/predict", "/webhook"):
                measure(base, route, args.clients, args.clients)  # warm-up
                latencies = sorted(measure(base, route, args.requests, args.clients))
                p50 = statistics.median(latencies) * 1000
                p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
                print(
                    f"{route:9s} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   max {latencies[-1] * 1000:7.1f} ms"
                )
            health = requests.get(base + "/health", timeout=5).json()
            print(
                "training state after the webhook burst:",
                json.dumps(health["training"].get("1", {}).get("state")),
            )
        finally:
            server.terminate()
            server.wait(30)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
