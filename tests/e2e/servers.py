"""Starting and stopping the two real servers of the end-to-end tests: Label Studio and this backend
(gunicorn, as the README starts it), each on a free loopback port, each logging to a file the tests print."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests

REPO = Path(__file__).resolve().parents[2]
E2E_DIR = REPO / ".e2e"
LS_VENV = E2E_DIR / "ls-venv"
LS_USER = "e2e@example.com"
LS_PASSWORD = "e2e-password-1"
LS_TOKEN = "e2e0" * 10  # a legacy token: 40 hex characters
# Variables that Label Studio also reads under bare names; the backend's HOST/PORT must not leak into it.
LS_UNSAFE_ENV = ("HOST", "PORT", "USERNAME", "PASSWORD", "DEBUG", "LABEL_STUDIO_HOST", "LABEL_STUDIO_PORT")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5) -> T:
    """Polls `probe` until it returns something truthy; the error names `what` and the last exception."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last_error})")


@dataclass
class Server:
    """A child process in its own process group, with its log file."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    auth: tuple[str, str] | None = None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
        return requests.get(f"{self.url}/health", auth=self.auth, timeout=2).ok

    def wait_healthy(self, timeout_s: float) -> None:
        try:
            wait_until(self.healthy, timeout_s, f"{self.name} at {self.url}/health")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.log_path}:\n{self.log_tail()}") from exc

    def stop(self, timeout_s: float = 15) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def _spawn(
    name: str,
    cmd: list[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    url: str,
    auth: tuple[str, str] | None = None,
) -> Server:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name=name, url=url, process=process, log_path=log_path, auth=auth)


def label_studio_env(data_dir: Path, document_root: Path, port: int) -> dict[str, str]:
    """Everything Label Studio needs to run offline on loopback and to talk to a backend on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in LS_UNSAFE_ENV and not k.startswith("VIRTUAL_ENV")}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=LS_USER,
        LABEL_STUDIO_PASSWORD=LS_PASSWORD,
        LABEL_STUDIO_USER_TOKEN=LS_TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        ML_BLOCK_LOCAL_IP="false",
        SSRF_PROTECTION_ENABLED="false",
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(document_root),
        LABEL_STUDIO_URL=f"http://127.0.0.1:{port}",
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        PATH=f"{LS_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def start_label_studio(data_dir: Path, document_root: Path, log_path: Path, timeout_s: float = 180) -> Server:
    """Label Studio on a free loopback port; on a fresh `data_dir` the first start migrates (~30 s)."""
    port = free_port()
    cmd = [
        str(LS_VENV / "bin" / "label-studio"),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = _spawn(
        "label-studio",
        cmd,
        label_studio_env(data_dir, document_root, port),
        data_dir,
        log_path,
        f"http://127.0.0.1:{port}",
    )
    return _healthy_or_stopped(server, timeout_s)


def _healthy_or_stopped(server: Server, timeout_s: float) -> Server:
    """The server once it answers /health; stopped again (no stray process) when it never does."""
    try:
        server.wait_healthy(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def backend_env(**overrides: str) -> dict[str, str]:
    """This environment without Label Studio's variables, offline and on one torch thread, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    env.update(
        TORCH_THREADS="1",
        OMP_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
    )
    env.update(overrides)
    return env


def start_backend(
    env_overrides: Mapping[str, str],
    log_path: Path,
    auth: tuple[str, str] | None = None,
    timeout_s: float = 90,
) -> Server:
    """The backend as the README starts it: gunicorn with gunicorn.conf.py and `_wsgi:app`."""
    port = free_port()
    env = backend_env(HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="DEBUG", **env_overrides)
    cmd = [str(REPO / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "_wsgi:app"]
    server = _spawn("backend", cmd, env, REPO, log_path, f"http://127.0.0.1:{port}", auth)
    return _healthy_or_stopped(server, timeout_s)
