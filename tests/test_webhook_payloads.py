"""A malformed annotation webhook is refused at the door with a 400 naming the field, and an annotation that
was stored malformed anyway is skipped by training (a reason in the log and /health), never breaking it."""

from __future__ import annotations

import logging

import pytest

from fixtures.app_factory import annotation_event, make_app


def _mutate(path: str, value):
    def change(event: dict) -> None:
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key] if not key.isdigit() else target[int(key)]
        if value is KeyError:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_mutate("annotation.id", "abc"), "'annotation.id'"),
        (_mutate("task.id", "abc"), "'task.id'"),
        (lambda e: (e["task"].pop("id"), e["annotation"].pop("task")), "'task.id'"),
        (_mutate("annotation.result.1", "junk"), "'annotation.result[1]'"),
        (_mutate("annotation.result.0.value", [1, 2]), "'annotation.result[0].value'"),
        (_mutate("annotation.result", {"a": 1}), "'annotation.result'"),
        (_mutate("task.data", "x"), "'task.data'"),
    ],
)
def test_malformed_annotation_webhook_is_refused_naming_the_field(settings, change, field) -> None:
    client = make_app(settings).test_client()
    event = annotation_event("ANNOTATION_CREATED", 1, 1, "Ball")
    event["annotation"]["result"].append(dict(event["annotation"]["result"][0]))
    change(event)
    response = client.post("/webhook", json=event)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["message"]
    assert not list(settings.model_dir.rglob("annotations/*.json"))  # nothing stored


def test_deleted_annotations_need_integer_ids(settings) -> None:
    client = make_app(settings).test_client()
    event = {"action": "ANNOTATIONS_DELETED", "project": annotation_event("X", 1, 1, "B")["project"]}
    event["annotations"] = [{"id": 3}, {"id": "abc"}]
    response = client.post("/webhook", json=event)
    assert response.status_code == 400 and "'annotations[1].id'" in response.get_json()["message"]


def test_training_skips_a_stored_malformed_annotation_and_trains_on_the_rest(settings, caplog) -> None:
    app = make_app(settings)
    backend, client = app.config["BACKEND"], app.test_client()
    bad = annotation_event("ANNOTATION_CREATED", 2, 2, "Goal")
    bad["annotation"]["id"] = "abc"  # stored by an earlier version that did not check at the door
    backend.annotations.upsert("1", bad["annotation"], {"id": "oops", "data": {}})
    worse = annotation_event("ANNOTATION_CREATED", 3, 3, "Goal")
    worse["annotation"]["result"].append("junk")
    backend.annotations.upsert("1", worse["annotation"], worse["task"])
    caplog.set_level(logging.WARNING)
    assert (
        client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball")).status_code == 200
    )
    backend.jobs.wait_idle("1", timeout_s=30)
    last = client.get("/health").get_json()["training"]["1"]["last"]
    assert last["status"] == "finished" and last["tasks"] == 1
    assert last["skipped_count"] == 2
    assert any("'task.id'" in reason for reason in last["skipped_annotations"])
    assert any("'annotation.result[1]'" in reason for reason in last["skipped_annotations"])
    assert backend.store.control_store("1", "label").load_meta()["task_ids"] == [1]
    assert "training data skipped" in caplog.text
