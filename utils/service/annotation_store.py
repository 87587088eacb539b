"""Annotations received by webhook, kept per project under the model dir, for training when the service
has no Label Studio API access. One small file per annotation, so a webhook writes only its own file (no
project-wide lock or rewrite) and answers fast. Returned as Label Studio-shaped tasks, so both sources of
training data look the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.service.files import read_json, safe_name, write_json_atomic

ANNOTATION_FIELDS = ("id", "result", "was_cancelled", "ground_truth", "updated_at", "created_at")


class AnnotationStore:
    def __init__(self, root: Path):
        self.root = root

    def _dir(self, project_id: str) -> Path:
        return self.root / safe_name(project_id) / "annotations"

    def upsert(self, project_id: str, annotation: dict[str, Any], task: dict[str, Any]) -> None:
        """Keep (or replace) one annotation together with the task data it belongs to."""
        record = {key: annotation.get(key) for key in ANNOTATION_FIELDS}
        record["task"] = {"id": task.get("id", annotation.get("task")), "data": task.get("data") or {}}
        # No fsync on the webhook's path: Label Studio keeps the annotation too (see write_atomic).
        write_json_atomic(self._dir(project_id) / f"{safe_name(annotation['id'])}.json", record, fsync=False)

    def delete(self, project_id: str, annotation_ids: list[Any]) -> None:
        for annotation_id in annotation_ids:
            (self._dir(project_id) / f"{safe_name(annotation_id)}.json").unlink(missing_ok=True)

    def tasks(self, project_id: str) -> list[dict[str, Any]]:
        """Tasks with their stored annotations, in Label Studio's task shape."""
        tasks: dict[str, dict[str, Any]] = {}
        directory = self._dir(project_id)
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            record = read_json(path)
            if not isinstance(record, dict) or not isinstance(record.get("task"), dict):
                continue  # a file being replaced right now, or damaged: never training data
            task = record.pop("task")
            # Ids and data are checked by training (a malformed one is skipped there with a reason).
            entry = tasks.setdefault(
                str(task.get("id")), {"id": task.get("id"), "data": task.get("data"), "annotations": []}
            )
            entry["data"] = task.get("data") or entry["data"]
            entry["annotations"].append(record)
        return list(tasks.values())
