"""Annotations received by webhook, kept per project under the model dir, for training when the service
has no Label Studio API access. One small file per annotation, so a webhook writes only its own file (no
project-wide lock or rewrite) and answers fast. Returned as Label Studio-shaped tasks, so both sources of
training data look the same. Under the Redis engine they live in Redis (`redis_annotation_store`) and these
files are only its spool while Redis is unreachable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.service.files import read_json, safe_name, write_json_atomic

ANNOTATION_FIELDS = ("id", "result", "was_cancelled", "ground_truth", "updated_at", "created_at")
if TYPE_CHECKING:
    from utils.service.redis_annotation_store import RedisAnnotationStore

CLAIMED = ".claimed"  # suffix of a spooled record being moved into Redis


def annotation_record(annotation: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """What is kept of one annotation: its fields and the task data it belongs to."""
    record = {key: annotation.get(key) for key in ANNOTATION_FIELDS}
    record["task"] = {"id": task.get("id", annotation.get("task")), "data": task.get("data") or {}}
    return record


def tombstone(annotation_id: Any) -> dict[str, Any]:
    """The record of a deleted annotation: Label Studio never reuses an id, so a deletion is final."""
    return {"id": annotation_id, "deleted": True}


def tasks_of(records: Iterable[Any]) -> list[dict[str, Any]]:
    """Records grouped into Label Studio-shaped tasks with their annotations; tombstones and damaged
    records are left out."""
    tasks: dict[str, dict[str, Any]] = {}
    for record in records:
        if not isinstance(record, dict) or record.get("deleted") or not isinstance(record.get("task"), dict):
            continue  # a file being replaced right now, or damaged: never training data
        record = dict(record)
        task = record.pop("task")
        # Ids and data are checked by training (a malformed one is skipped there with a reason).
        entry = tasks.setdefault(
            str(task.get("id")), {"id": task.get("id"), "data": task.get("data"), "annotations": []}
        )
        entry["data"] = task.get("data") or entry["data"]
        entry["annotations"].append(record)
    return list(tasks.values())


class AnnotationStore:
    def __init__(self, root: Path):
        self.root = root

    def _dir(self, project_id: str) -> Path:
        return self.root / safe_name(project_id) / "annotations"

    def _path(self, project_id: str, annotation_id: Any) -> Path:
        return self._dir(project_id) / f"{safe_name(annotation_id)}.json"

    def upsert(self, project_id: str, annotation: dict[str, Any], task: dict[str, Any]) -> None:
        """Keep (or replace) one annotation together with the task data it belongs to."""
        self.put(project_id, annotation_record(annotation, task))

    def put(self, project_id: str, record: dict[str, Any]) -> None:
        # No fsync on the webhook's path: Label Studio keeps the annotation too (see write_atomic).
        write_json_atomic(self._path(project_id, record["id"]), record, fsync=False)

    def delete(self, project_id: str, annotation_ids: list[Any]) -> None:
        for annotation_id in annotation_ids:
            self._path(project_id, annotation_id).unlink(missing_ok=True)

    def tasks(self, project_id: str) -> list[dict[str, Any]]:
        """Tasks with their stored annotations, in Label Studio's task shape."""
        directory = self._dir(project_id)
        paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
        return tasks_of(read_json(path) for path in paths)

    def claim(self, project_id: str) -> list[tuple[Path, Any]]:
        """Every record with its claimed path, renamed first so a rewrite of the same annotation meanwhile
        lands in a new file (left for the next claim); the caller unlinks a claimed path once it is moved."""
        directory = self._dir(project_id)
        if not directory.is_dir():
            return []
        for path in directory.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                path.replace(path.with_name(path.name + CLAIMED))
        return [(path, read_json(path)) for path in sorted(directory.glob(f"*.json{CLAIMED}"))]


def make_annotation_store(redis_url: str, root: Path) -> AnnotationStore | RedisAnnotationStore:
    """Redis when the Redis engine runs (the files under `root` are then its spool), else files."""
    if not redis_url:
        return AnnotationStore(root)
    from utils.service.redis_annotation_store import RedisAnnotationStore
    from utils.service.redis_connection import connect

    return RedisAnnotationStore(connect(redis_url), root)
