"""A task that cannot be predicted says why in its prediction item (`error`, a field Label Studio ignores),
and /health keeps the last few such errors per project."""

from __future__ import annotations

import dataclasses

from fixtures.app_factory import VIDEO_CONFIG, make_app
from tests.local_http import media_server_handler, serving


def test_failed_task_item_says_why_and_health_lists_it(settings, tmp_path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.mp4").write_bytes(b"video")
    client = make_app(dataclasses.replace(settings, media_roots=(media,))).test_client()
    handler = media_server_handler(b"secret")
    with serving(handler) as internal:
        tasks = [
            {"id": 1, "data": {}},
            {"id": 2, "data": {"video": f"{internal}/x.mp4"}},
            {"id": 3, "data": {"video": str(media / "ok.mp4")}},
        ]
        response = client.post(
            "/predict", json={"tasks": tasks, "project": "4.1", "label_config": VIDEO_CONFIG}
        )
    assert response.status_code == 200
    missing, internal_url, good = response.get_json()["results"]
    assert missing["result"] == [] and "no data field 'video'" in missing["error"]
    assert internal_url["result"] == [] and "non-public address" in internal_url["error"]
    assert "error" not in good
    assert handler.seen == []
    recent = client.get("/health").get_json()["recent_errors"]["4"]
    assert [e["task"] for e in recent] == [1, 2]
    assert recent[0]["error"].startswith("label: ") and recent[0]["at"] > 0


def test_health_keeps_only_the_newest_errors(settings) -> None:
    client = make_app(settings).test_client()
    tasks = [{"id": i, "data": {}} for i in range(25)]
    client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": VIDEO_CONFIG})
    recent = client.get("/health").get_json()["recent_errors"]["5"]
    assert [e["task"] for e in recent] == list(range(15, 25))
