"""The last few per-task failures of each project (media missing, wrong channels, ...), kept in a small JSON
file per project so /health shows them whichever worker process answered the failing request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.locks import file_lock


class RecentErrors:
    def __init__(self, root: Path, keep: int = 10):
        self.root = root
        self.keep = keep

    def _path(self, project_id: str) -> Path:
        return self.root / safe_name(project_id) / "errors.json"

    def add(self, project_id: str, errors: list[dict[str, Any]]) -> None:
        """Append `errors` (each `{"task", "control", "error"}`), keeping the newest `keep`."""
        if not errors:
            return
        path = self._path(project_id)
        stamped = [{**error, "at": round(time.time(), 3)} for error in errors]
        with file_lock(path.with_suffix(".lock")):
            known = read_json(path, default=[])
            known = known if isinstance(known, list) else []
            write_json_atomic(path, (known + stamped)[-self.keep :])

    def by_project(self) -> dict[str, list[dict[str, Any]]]:
        """Every project's recent errors, oldest first."""
        if not self.root.is_dir():
            return {}
        found = {
            path.parent.name: read_json(path, default=[]) for path in sorted(self.root.glob("*/errors.json"))
        }
        return {project: errors for project, errors in found.items() if errors}
