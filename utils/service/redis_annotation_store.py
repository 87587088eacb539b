"""Webhook annotations under the Redis engine: one Redis hash per project (annotation id -> JSON record).
A webhook then costs one Redis round trip instead of a file written on the shared volume, and workers on any
machine read the same annotations. Label Studio may deliver webhooks out of order, so a record replaces the
kept one only if it is not older (`updated_at`), and a deletion is final. While Redis is unreachable, the
file store holds records and deletions as a spool; the next read (a training) moves them into Redis under
the same rule, so nothing a webhook said is lost."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import redis

from utils.service.annotation_store import AnnotationStore, annotation_record, tasks_of, tombstone
from utils.service.redis_connection import PREFIX

logger = logging.getLogger(__name__)
RETRY_S = 1.0

# KEYS: project hash. ARGV: annotation id, record JSON. Keeps the newer record; a tombstone always wins.
KEEP_NEWER = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local kept, new = cjson.decode(old), cjson.decode(ARGV[2])
  if kept.deleted then return 0 end
  if not new.deleted and type(kept.updated_at) == 'string' and type(new.updated_at) == 'string'
     and new.updated_at < kept.updated_at then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class RedisAnnotationStore:
    """The `AnnotationStore` interface on Redis, with the file store as its spool."""

    def __init__(self, client: redis.Redis, spool_root: Path):
        self.redis = client
        self.spool = AnnotationStore(spool_root)
        self._keep_newer = client.register_script(KEEP_NEWER)
        self._retry_at = 0.0  # while Redis is known down, webhooks spool at once and retry it each second

    def _key(self, project_id: str) -> str:
        return f"{PREFIX}:annotations:{project_id}"

    def _keep(self, project_id: str, record: dict[str, Any]) -> None:
        self._keep_newer(keys=[self._key(project_id)], args=[str(record["id"]), json.dumps(record)])

    def _put(self, project_id: str, record: dict[str, Any]) -> None:
        if time.monotonic() >= self._retry_at:
            try:
                self._keep(project_id, record)
                self._retry_at = 0.0
                return
            except redis.RedisError as exc:
                if not self._retry_at:  # logged once per outage
                    logger.error("Redis unreachable (%s): annotations are kept on disk until it is back", exc)
                self._retry_at = time.monotonic() + RETRY_S
        self.spool.put(project_id, record)

    def upsert(self, project_id: str, annotation: dict[str, Any], task: dict[str, Any]) -> None:
        self._put(project_id, annotation_record(annotation, task))

    def delete(self, project_id: str, annotation_ids: list[Any]) -> None:
        self.spool.delete(project_id, annotation_ids)  # a record spooled before the deletion must not return
        for annotation_id in annotation_ids:
            self._put(project_id, tombstone(annotation_id))

    def tasks(self, project_id: str) -> list[dict[str, Any]]:
        """The project's annotated tasks, after moving its spool into Redis (raises while Redis is down:
        the training then fails with that reason and runs again)."""
        for path, record in self.spool.claim(project_id):
            if isinstance(record, dict) and "id" in record:
                self._keep(project_id, record)
            path.unlink(missing_ok=True)
        records = self.redis.hvals(self._key(project_id))
        return tasks_of(json.loads(raw) for raw in records)
