"""A small JSON document per project (`<root>/<project>/<name>`), changed under a file lock that every local
process shares, so counters and logs written by several gunicorn workers at once stay true. Training jobs,
prediction progress, recent errors and deferred requests each keep one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.locks import file_lock


class ProjectState:
    """The document `name` of each project; `default` (a dict or a list) is what a missing or malformed file
    reads as, and a stored dict is read over it, so fields added later get their default."""

    def __init__(self, root: Path, name: str, default: dict[str, Any] | list[Any]):
        self.root = root
        self.name = name
        self.default = default

    def path(self, project_id: str) -> Path:
        return self.root / safe_name(project_id) / self.name

    def read(self, project_id: str) -> Any:
        stored = read_json(self.path(project_id), default=None)
        fresh = copy.deepcopy(self.default)
        if isinstance(fresh, dict):
            return {**fresh, **stored} if isinstance(stored, dict) else fresh
        return stored if isinstance(stored, list) else fresh

    def update(self, project_id: str, change: Callable[[Any], None]) -> Any:
        """Apply `change` to the document in place, under the lock, and write it; returns the new document."""
        path = self.path(project_id)
        with file_lock(path.with_suffix(".lock")):
            state = self.read(project_id)
            change(state)
            write_json_atomic(path, state)
            return state

    def projects(self) -> dict[str, Any]:
        """Every project that has this document, by its folder name, in order."""
        if not self.root.is_dir():
            return {}
        return {
            path.parent.name: self.read(path.parent.name) for path in sorted(self.root.glob(f"*/{self.name}"))
        }
