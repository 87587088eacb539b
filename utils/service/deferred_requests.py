"""Training requests that could not reach Redis, kept on local disk until it is back: a webhook that
arrives while Redis is down still answers at once, and its training is asked for as soon as Redis returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.service.project_state import ProjectState

FILE_NAME = "deferred-requests.json"


class DeferredRequests:
    """A per-project count of requests not yet handed to the job engine, shared by the local processes."""

    def __init__(self, state_root: Path):
        self._state = ProjectState(state_root, FILE_NAME, {"count": 0})

    def add(self, project_id: str) -> int:
        """Record one more request; returns the project's deferred count."""

        def bump(entry: dict[str, Any]) -> None:
            entry.update(count=int(entry["count"]) + 1, project=project_id)

        return self._state.update(project_id, bump)["count"]

    def pending(self) -> dict[str, int]:
        entries = self._state.projects().values()
        return {str(entry["project"]): int(entry["count"]) for entry in entries if entry.get("count")}

    def hand_over(self, deliver: Callable[[str, int], None]) -> int:
        """Call `deliver(project_id, count)` for each project with deferred requests and clear what it took;
        stops at the first failure (the rest stays for the next try). Returns the requests handed over."""
        handed: list[int] = []

        def take_from(project_id: str) -> Callable[[dict[str, Any]], None]:
            def take(entry: dict[str, Any]) -> None:
                count = int(entry["count"])
                if count:
                    deliver(project_id, count)  # raising leaves the file as it was
                    handed.append(count)
                entry.update(count=0, project=project_id)

            return take

        for project_id in self.pending():
            self._state.update(project_id, take_from(project_id))
        return sum(handed)
