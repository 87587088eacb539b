"""Checks that job workers and web processes share one MODEL_DIR: models trained by a worker whose
MODEL_DIR is a different disk would never reach the web processes, which would go on serving stale ones.

The first process to start writes a random id into `MODEL_DIR/.model-dir-id` and publishes it in Redis;
every later process compares the id in its own MODEL_DIR with the published one."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from utils.service.files import write_atomic

logger = logging.getLogger(__name__)

MARKER = ".model-dir-id"


def model_dir_id(model_dir: Path) -> str:
    """This MODEL_DIR's id, created on first use (a concurrent creator may win: the file is re-read)."""
    path = model_dir / MARKER
    if not path.is_file():
        model_dir.mkdir(parents=True, exist_ok=True)
        candidate = uuid.uuid4().hex
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            write_atomic(path, lambda tmp: tmp.write_text(candidate))
    for _ in range(50):  # the creator may still be writing
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.01)
    raise RuntimeError(f"{path} stays empty")


def check_model_dir(redis: Any, key: str, model_dir: Path, role: str) -> dict[str, Any] | None:
    """Publish this MODEL_DIR's id if none is yet; returns a description of the mismatch (also stored in
    Redis under `key:mismatch` for /health), or None when this process shares the published MODEL_DIR."""
    own = model_dir_id(model_dir)
    redis.set(key, own, nx=True)
    published = redis.get(key)
    published = published.decode() if isinstance(published, bytes) else published
    if published == own:
        return None
    problem = {
        "role": role,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "model_dir": str(model_dir),
        "at": time.time(),
        "message": f"MODEL_DIR {model_dir} is not the one the other processes use (id {own} != {published}): "
        "put MODEL_DIR on a volume shared by the web service and every worker",
    }
    redis.hset(f"{key}:mismatch", f"{problem['host']}:{problem['pid']}", json.dumps(problem))
    redis.expire(f"{key}:mismatch", 24 * 3600)
    logger.error("%s: %s", role, problem["message"])
    return problem
