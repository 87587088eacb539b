"""HTTP load from client processes of their own: each client thread keeps one keep-alive connection (plain
`http.client`). Closed loop (`rate=0`): a client sends its next request when the last one is answered, so
the clients saturate the service. Paced (`rate` requests/s per client): a client sends on a fixed schedule,
and a request's latency counts from when it was due, so time spent waiting behind a slow answer is counted
(no coordinated omission). The clients run outside the measuring process and spend little CPU per request,
so what they time is the service, not a client contending for the GIL with nineteen others and with the
process that started the servers."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Request = tuple[str, str, dict[str, Any] | None]  # (route, method, JSON body or None)
RequestFactory = Callable[[int, int], Request]  # (client index, request number) -> request


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of seconds, in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _client(
    url: str, make: RequestFactory, index: int, deadline: float, rate: float, out: dict[str, list[float]]
) -> None:
    try:
        _requests(url, make, index, deadline, rate, out)
    except Exception as exc:  # noqa: BLE001 - reported by run_load, which raises
        out["failures"].append(f"client {index}: {type(exc).__name__}: {exc}")  # type: ignore[arg-type]


def _requests(
    url: str, make: RequestFactory, index: int, deadline: float, rate: float, out: dict[str, list[float]]
) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    number = 0
    first_due = time.perf_counter() + random.Random(index).random() / rate if rate else 0.0  # spread clients
    while time.time() < deadline:
        route, method, body = make(index, number)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        started = time.perf_counter()
        if rate:
            due = first_due + number / rate
            if due > started:
                time.sleep(due - started)
            started = due
        number += 1
        connection.request(method, route, body=data, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{method} {route} -> {response.status}")
        out[route].append(elapsed)
    connection.close()


def _client_process(
    url: str,
    make: RequestFactory,
    indices: list[int],
    seconds: float,
    rate: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    ready.put(len(indices))
    go.wait()
    deadline = time.time() + seconds
    latencies: dict[str, list[float]] = defaultdict(list)
    threads = [
        threading.Thread(target=_client, args=(url, make, i, deadline, rate, latencies)) for i in indices
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(dict(latencies))


def run_load(
    url: str, make: RequestFactory, clients: int, seconds: float, processes: int = 4, rate: float = 0.0
) -> dict[str, list[float]]:
    """`clients` client threads spread over `processes` processes for `seconds`, closed loop or paced at
    `rate` requests/s each; latencies by route. `make` must be picklable (a module-level function or a
    `functools.partial` of one)."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    groups = [list(range(clients))[p::processes] for p in range(min(processes, clients))]
    workers = [
        context.Process(target=_client_process, args=(url, make, group, seconds, rate, ready, go, results))
        for group in groups
    ]
    for worker in workers:
        worker.start()
    for _ in workers:  # every process imported and waiting before the load starts
        ready.get(timeout=120)
    go.set()
    merged: dict[str, list[float]] = defaultdict(list)
    for _ in workers:
        for route, values in results.get(timeout=seconds + 120).items():
            merged[route].extend(values)
    for worker in workers:
        worker.join(30)
        if worker.exitcode != 0:
            raise RuntimeError(f"a client process exited with {worker.exitcode}")
    if merged.get("failures"):
        raise RuntimeError(f"requests failed: {merged['failures'][:3]}")
    return merged
