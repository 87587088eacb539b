"""Safe file names and atomic writes: a crash mid-write never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(value: object, max_length: int = 64) -> str:
    """A file-name-safe form of an id or control name; distinct inputs stay distinct."""
    text = str(value)
    cleaned = _UNSAFE.sub("_", text).strip("._") or "_"
    if cleaned == text and len(text) <= max_length:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{cleaned[: max_length - 11]}-{digest}"


def resolve_inside(path: Path, roots: Iterable[Path]) -> Path | None:
    """`path` resolved (`~`, `..` and symlinks followed) when it lies inside one of `roots`, else None: the one
    check that keeps reads and writes inside the directories the service was given."""
    resolved = path.expanduser().resolve()
    return resolved if any(resolved.is_relative_to(root.resolve()) for root in roots) else None


def file_inside(path: Path, roots: tuple[Path, ...]) -> Path:
    """An existing file inside one of `roots`, resolved; else ValueError saying which of the two failed."""
    resolved = resolve_inside(path, roots)
    if resolved is None:
        raise ValueError(
            f"outside the allowed directories ({', '.join(map(str, roots)) or 'none configured'})"
        )
    if not resolved.is_file():
        raise ValueError(f"no such file {resolved}")
    return resolved


def write_atomic(path: Path, writer: Callable[[Path], None], fsync: bool = True) -> None:
    """Call `writer` on a temp file beside `path`, fsync it, then rename it over `path`. `fsync=False` for
    small records on a request path: the rename still keeps a crashed process from leaving half a file; only
    a power loss of the host may lose the last seconds of them (as Redis's default `appendfsync everysec`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any, fsync: bool = True) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True)), fsync)


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON, treating a missing or unreadable file as `default`."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default
