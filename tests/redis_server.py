"""A real Redis server for tests: Debian's redis-server (scripts/install-redis.sh) on a free loopback port,
persisting to an append-only file in a temp dir so that a stop and restart keeps its data, as in production."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.e2e.servers import free_port, wait_until


class RedisServer:
    def __init__(self, directory: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run scripts/install-redis.sh")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)]
        cmd += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: self._ping(client), 20, f"redis-server on port {self.port}", interval_s=0.1)
        return self

    def _ping(self, client: redis.Redis) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()[-2000:]}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as `docker compose stop` does."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None
