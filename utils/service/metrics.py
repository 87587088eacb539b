"""Per-process request counters and latency percentiles, for GET /metrics."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

WINDOW = 1000  # latencies kept per route for the percentiles


class RequestMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._latencies: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))

    def record(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[route][str(status)] += 1
            self._latencies[route].append(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            routes = {}
            for route, counts in self._counts.items():
                ordered = sorted(self._latencies[route])
                routes[route] = {
                    "count": sum(counts.values()),
                    "by_status": dict(counts),
                    "latency_ms": {
                        "p50": _percentile(ordered, 0.50) * 1000,
                        "p99": _percentile(ordered, 0.99) * 1000,
                        "max": (ordered[-1] if ordered else 0.0) * 1000,
                    },
                }
            return routes


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
