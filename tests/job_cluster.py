"""Web processes (gunicorn) and RQ workers of one Redis-engine deployment around the test-only control models,
sharing one MODEL_DIR and one real Redis: for the Redis engine's tests and bench/bench_jobs.py."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import psutil

from tests.e2e.servers import REPO, Server, _spawn, backend_env, free_port
from tests.redis_server import RedisServer


class Cluster:
    """Web processes and RQ workers of one deployment, sharing one MODEL_DIR and one Redis."""

    def __init__(self, root: Path, redis_server: RedisServer):
        self.root = root
        self.redis = redis_server
        self.model_dir = root / "models"
        self.servers: list[Server] = []

    def env(self, **overrides: str) -> dict[str, str]:
        deployment = {
            "MODEL_DIR": str(self.model_dir),
            "CACHE_DIR": str(self.root / "cache"),
            "REDIS_URL": self.redis.url,
            "JOB_LOCK_TTL": "2",
            "LOG_LEVEL": "INFO",
        }
        return backend_env(**{**deployment, **overrides})

    def web(self, workers: int = 2, app: str = "tests.app_factory:app_from_env()", **env: str) -> Server:
        """gunicorn with `workers` processes; `app="_wsgi:create_app()"` for the real control models."""
        port = free_port()
        cmd = [str(REPO / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", app]
        environ = self.env(HOST="127.0.0.1", PORT=str(port), WORKERS=str(workers), **env)
        log = self.root / f"web-{port}.log"
        server = _spawn("web", cmd, environ, REPO, log, f"http://127.0.0.1:{port}")
        self.servers.append(server)
        server.wait_healthy(90)
        return server

    def worker(self, real_models: bool = False, **env: str) -> Server:
        """An RQ worker: `worker.py` as `./run.sh worker` starts it, or around the test control models."""
        log = self.root / f"worker-{len(self.servers)}.log"
        cmd = [sys.executable, "worker.py"] if real_models else [sys.executable, "-m", "tests.rq_worker"]
        server = _spawn("rq-worker", cmd, self.env(**env), REPO, log, "")
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
