"""The scripts the Docker image runs: the build-time image check (wrong torch build, root user) and the health
check that reads basic auth from the environment instead of taking the password as an argument."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from fixtures.app_factory import make_app

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPTS / name), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_image_check_passes_for_the_cpu_torch_installed_here() -> None:
    result = run_script("check_image.py", "--torch-variant", "cpu")
    assert result.returncode == 0, result.stderr


def test_image_check_fails_the_build_for_a_wrong_torch_build_or_a_root_user(tmp_path) -> None:
    result = run_script("check_image.py", "--torch-variant", "cu126", "--service-user", str(tmp_path))
    assert result.returncode == 1
    assert "TORCH_VARIANT=cu126" in result.stderr
    if os.getuid() == 0:
        assert "root" in result.stderr


@pytest.fixture()
def served_app(settings):
    app = make_app(dataclasses.replace(settings, basic_auth_user="ls", basic_auth_pass="s3cret-pass"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


def health_env(port: int, password: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "BASIC_AUTH_USER": "ls",
        "BASIC_AUTH_PASS": password,
    }


def test_health_check_reads_the_password_from_the_environment(served_app) -> None:
    healthy = run_script("healthcheck.py", env=health_env(served_app, "s3cret-pass"))
    assert healthy.returncode == 0, healthy.stderr
    assert "s3cret-pass" not in " ".join(healthy.args)
    wrong = run_script("healthcheck.py", env=health_env(served_app, "wrong"))
    assert wrong.returncode == 1 and "401" in wrong.stderr


def test_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_script("healthcheck.py", env=health_env(port, "x"))
    assert result.returncode == 1 and "unhealthy" in result.stderr
