"""Web processes (gunicorn) and RQ workers of one Redis-engine deployment around the test-only control models,
sharing one MODEL_DIR and one real Redis: for the Redis engine's tests and bench/bench_jobs.py."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import psutil

from tests.e2e.servers import REPO, Server, _spawn, free_port
from tests.redis_server import RedisServer


class Cluster:
    """Web processes and RQ workers of one deployment, sharing one MODEL_DIR and one Redis."""

    def __init__(self, root: Path, redis_server: RedisServer):
        self.root = root
        self.redis = redis_server
        self.model_dir = root / "models"
        self.servers: list[Server] = []

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
        env.update(
            MODEL_DIR=str(self.model_dir),
            CACHE_DIR=str(self.root / "cache"),
            REDIS_URL=self.redis.url,
            JOB_LOCK_TTL="2",
            TORCH_THREADS="1",
            OMP_NUM_THREADS="1",
            LOG_LEVEL="INFO",
            YOLO_OFFLINE="1",
            YOLO_AUTOINSTALL="false",
        )
        env.update(overrides)
        return env

    def web(self, workers: int = 2, **env: str) -> Server:
        port = free_port()
        cmd = [str(REPO / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "tests.app_factory:app_from_env()"]
        environ = self.env(HOST="127.0.0.1", PORT=str(port), WORKERS=str(workers), **env)
        log = self.root / f"web-{port}.log"
        server = _spawn("web", cmd, environ, REPO, log, f"http://127.0.0.1:{port}")
        self.servers.append(server)
        server.wait_healthy(90)
        return server

    def worker(self, **env: str) -> Server:
        log = self.root / f"worker-{len(self.servers)}.log"
        server = _spawn(
            "rq-worker", [sys.executable, "-m", "tests.rq_worker"], self.env(**env), REPO, log, ""
        )
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            kill_tree(server.process.pid)

    def logs(self) -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.log_tail(40)}" for s in self.servers)


def kill_tree(pid: int) -> list[int]:
    """kill -9 a process and its descendants (an RQ work-horse runs in a process group of its own)."""
    try:
        parent = psutil.Process(pid)
        victims = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=5)
    return [p.pid for p in victims]
