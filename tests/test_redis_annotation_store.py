"""Webhook annotations under the Redis engine, with a real Redis server: kept in Redis (not on the shared
volume), newest version wins whatever order Label Studio delivers them in, a deletion is final, and what
arrives while Redis is down is spooled on disk and moved in by the next training's read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.redis_server import RedisServer
from utils.service.annotation_store import make_annotation_store
from utils.service.redis_annotation_store import RedisAnnotationStore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def store(redis_server: RedisServer, tmp_path: Path) -> RedisAnnotationStore:
    made = make_annotation_store(redis_server.url, tmp_path / "projects")
    assert isinstance(made, RedisAnnotationStore)  # REDIS_URL set: the Redis engine's store
    return made


TASK = {"id": 7, "data": {}}


def annotation(annotation_id: int, label: str, updated_at: str) -> dict[str, Any]:
    result = [{"type": "timelinelabels", "value": {"timelinelabels": [label]}}]
    return {"id": annotation_id, "task": 7, "result": result, "updated_at": updated_at}


def labels(store: RedisAnnotationStore, project: str = "1") -> dict[int, str]:
    return {
        a["id"]: a["result"][0]["value"]["timelinelabels"][0]
        for t in store.tasks(project)
        for a in t["annotations"]
    }


def spooled_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("annotations/*") if p.is_file())


def test_annotations_live_in_redis_and_read_back_as_label_studio_tasks(
    store: RedisAnnotationStore, tmp_path: Path
) -> None:
    store.upsert("1", annotation(1, "Ball", "2026-01-01T10:00:00Z"), {"id": 7, "data": {"video": "/v.mp4"}})
    store.upsert("1", annotation(2, "Goal", "2026-01-01T10:00:01Z"), {"id": 7, "data": {"video": "/v.mp4"}})
    store.upsert("2", annotation(3, "Ball", "2026-01-01T10:00:02Z"), {"id": 9, "data": {"video": "/w.mp4"}})

    tasks = store.tasks("1")
    assert [(t["id"], t["data"]) for t in tasks] == [(7, {"video": "/v.mp4"})]
    assert labels(store) == {1: "Ball", 2: "Goal"} and labels(store, "2") == {3: "Ball"}
    assert spooled_files(tmp_path) == []  # nothing written on the (shared) volume


def test_an_older_update_never_replaces_a_newer_one_and_a_deletion_is_final(
    store: RedisAnnotationStore,
) -> None:
    store.upsert("1", annotation(1, "Goal", "2026-01-01T10:00:05Z"), TASK)
    store.upsert("1", annotation(1, "Ball", "2026-01-01T10:00:01Z"), TASK)  # delivered late
    assert labels(store) == {1: "Goal"}
    store.upsert("1", annotation(1, "Miss", "2026-01-01T10:00:09Z"), TASK)
    assert labels(store) == {1: "Miss"}

    store.delete("1", [1])
    store.upsert("1", annotation(1, "Goal", "2026-01-01T10:00:10Z"), TASK)  # an update delivered after it
    assert store.tasks("1") == []


def test_what_arrives_while_redis_is_down_is_spooled_and_moved_in_by_the_next_read(
    store: RedisAnnotationStore, redis_server: RedisServer, tmp_path: Path
) -> None:
    store.upsert("1", annotation(1, "Ball", "2026-01-01T10:00:00Z"), TASK)
    store.upsert("1", annotation(2, "Ball", "2026-01-01T10:00:00Z"), TASK)

    redis_server.stop()
    store.upsert("1", annotation(2, "Goal", "2026-01-01T10:00:03Z"), TASK)  # an update
    store.upsert("1", annotation(3, "Miss", "2026-01-01T10:00:04Z"), TASK)  # a new one
    store.delete("1", [1])
    assert len(spooled_files(tmp_path)) == 3

    redis_server.start()
    assert labels(store) == {2: "Goal", 3: "Miss"}
    assert spooled_files(tmp_path) == []
    assert labels(make_annotation_store(redis_server.url, tmp_path / "projects")) == {2: "Goal", 3: "Miss"}
