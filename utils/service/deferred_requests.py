"""Training requests that could not reach Redis, kept on local disk until it is back: a webhook that
arrives while Redis is down still answers at once, and its training is asked for as soon as Redis returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.locks import file_lock

FILE_NAME = "deferred-requests.json"


class DeferredRequests:
    """A per-project count of requests not yet handed to the job engine, shared by the local processes."""

    def __init__(self, state_root: Path):
        self.state_root = state_root

    def _path(self, project_id: str) -> Path:
        return self.state_root / safe_name(project_id) / FILE_NAME

    def add(self, project_id: str) -> int:
        """Record one more request; returns the project's deferred count."""
        path = self._path(project_id)
        with file_lock(path.with_suffix(".lock")):
            count = int(read_json(path, default={}).get("count", 0)) + 1
            write_json_atomic(path, {"count": count, "project": project_id})
        return count

    def pending(self) -> dict[str, int]:
        result: dict[str, int] = {}
        if not self.state_root.is_dir():
            return result
        for path in self.state_root.glob(f"*/{FILE_NAME}"):
            entry = read_json(path, default={})
            if entry.get("count"):
                result[str(entry["project"])] = int(entry["count"])
        return result

    def hand_over(self, deliver: Callable[[str, int], None]) -> int:
        """Call `deliver(project_id, count)` for each project with deferred requests and clear what it took;
        stops at the first failure (the rest stays for the next try). Returns the requests handed over."""
        handed = 0
        for project_id in self.pending():
            path = self._path(project_id)
            with file_lock(path.with_suffix(".lock")):
                count = int(read_json(path, default={}).get("count", 0))
                if count:
                    deliver(project_id, count)
                    write_json_atomic(path, {"count": 0, "project": project_id})
                    handed += count
        return handed
