"""Annotations received by webhook, kept per project under the model dir, for training when the service
has no Label Studio API access. Stored as Label Studio-shaped tasks so both sources look the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.files import read_json, safe_name, write_json_atomic
from utils.locks import file_lock

ANNOTATION_FIELDS = ("id", "result", "was_cancelled", "ground_truth", "updated_at", "created_at")


class AnnotationStore:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, project_id: str) -> Path:
        return self.root / safe_name(project_id) / "annotations.json"

    def _change(self, project_id: str, change) -> None:  # noqa: ANN001 - small internal callback
        path = self._path(project_id)
        with file_lock(path.with_suffix(".lock")):
            data = read_json(path, default={})
            data = data if isinstance(data, dict) else {}
            change(data)
            write_json_atomic(path, data)

    def upsert(self, project_id: str, annotation: dict[str, Any], task: dict[str, Any]) -> None:
        """Keep (or replace) one annotation together with the task data it belongs to."""
        record = {key: annotation.get(key) for key in ANNOTATION_FIELDS}
        record["task"] = {"id": task.get("id", annotation.get("task")), "data": task.get("data") or {}}
        self._change(project_id, lambda data: data.__setitem__(str(annotation["id"]), record))

    def delete(self, project_id: str, annotation_ids: list[int]) -> None:
        def drop(data: dict[str, Any]) -> None:
            for annotation_id in annotation_ids:
                data.pop(str(annotation_id), None)

        self._change(project_id, drop)

    def tasks(self, project_id: str) -> list[dict[str, Any]]:
        """Tasks with their stored annotations, in Label Studio's task shape."""
        data = read_json(self._path(project_id), default={})
        tasks: dict[int, dict[str, Any]] = {}
        for record in (data or {}).values():
            task = record["task"]
            entry = tasks.setdefault(
                int(task["id"]), {"id": task["id"], "data": task["data"], "annotations": []}
            )
            entry["data"] = task["data"] or entry["data"]
            entry["annotations"].append({k: v for k, v in record.items() if k != "task"})
        return list(tasks.values())
