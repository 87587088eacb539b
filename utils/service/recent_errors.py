"""The last few per-task failures of each project (media missing, wrong channels, ...), kept in a small JSON
file per project so /health shows them whichever worker process answered the failing request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from utils.service.project_state import ProjectState


class RecentErrors:
    def __init__(self, root: Path, keep: int = 10):
        self._state = ProjectState(root, "errors.json", [])
        self.keep = keep

    def add(self, project_id: str, errors: list[dict[str, Any]]) -> None:
        """Append `errors` (each `{"task", "control", "error"}`), keeping the newest `keep`."""
        if not errors:
            return
        stamped = [{**error, "at": round(time.time(), 3)} for error in errors]

        def append(known: list[dict[str, Any]]) -> None:
            known.extend(stamped)
            del known[: -self.keep]

        self._state.update(project_id, append)

    def by_project(self) -> dict[str, list[dict[str, Any]]]:
        """Every project's recent errors, oldest first."""
        return {project: errors for project, errors in self._state.projects().items() if errors}
