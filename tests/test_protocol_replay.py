"""Every request Label Studio 1.23.2 really sent gets the status and shape Label Studio expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.app_factory import make_app
from fixtures.data import TEST_DATA, require

RECORDED = require(TEST_DATA / "ls-payloads")
PAYLOADS = sorted(RECORDED.glob("*.json"))
assert PAYLOADS, f"no recorded requests in {RECORDED}"
LOCAL_VIDEO = str(TEST_DATA / "video/spliced/spliced_train0.mp4")


def recorded_json(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())["json"]


@pytest.fixture()
def client(settings):
    app = make_app(settings)
    yield app.test_client()
    jobs = app.config["BACKEND"].jobs
    for project, state in jobs.status().items():  # every training a replayed webhook queued must succeed
        final = jobs.wait_idle(project, timeout_s=30)
        assert final["failures"] == 0, (project, state, final["last"])


@pytest.mark.parametrize("recorded", PAYLOADS, ids=lambda p: p.stem)
def test_recorded_request_gets_expected_answer(client, recorded: Path) -> None:
    request = json.loads(recorded.read_text())
    headers = {k: v for k, v in request["headers"].items() if k.lower() not in ("host", "content-length")}
    response = client.open(request["path"], method=request["method"], json=request["json"], headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    path = request["path"]
    if path == "/health":
        assert body["status"] == "UP" and body["model_class"] == "TemporalBackend"
    elif path == "/setup":
        assert isinstance(body["model_version"], str) and body["model_version"]
    elif path == "/predict":
        tasks = request["json"]["tasks"]
        assert len(body["results"]) == len(tasks)
        for item in body["results"]:
            assert (
                item["result"] == []
            )  # media is on a Label Studio that is not running: empty, not a failure
            assert isinstance(item["model_version"], str)
            assert "score" in item
    else:
        action = request["json"]["action"]
        expected = "queued" if action != "TASKS_CREATED" and action != "PROJECT_UPDATED" else "ignored"
        assert body["status"] == expected


def test_setup_and_predict_report_the_same_version(client) -> None:
    setup = recorded_json("video_post_setup")
    predict = recorded_json("video_post_predict")
    version = client.post("/setup", json=setup).get_json()["model_version"]
    results = client.post("/predict", json=predict).get_json()["results"]
    assert {r["model_version"] for r in results} == {version}


def test_recorded_annotation_trains_and_then_predicts_its_label(client, settings) -> None:
    client.post("/setup", json=recorded_json("video_post_setup"))
    event = recorded_json("video_post_webhook_ANNOTATION_CREATED")
    assert client.post("/webhook", json=event).get_json()["status"] == "queued"
    assert (
        client.application.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)["last"]["status"] == "finished"
    )
    predict = recorded_json("video_post_predict")
    predict["tasks"] = [{**task, "data": {"video": LOCAL_VIDEO}} for task in predict["tasks"]]
    results = client.post("/predict", json=predict).get_json()["results"]
    regions = [region for item in results for region in item["result"]]
    assert len(regions) == len(predict["tasks"])
    assert {(r["from_name"], r["to_name"], r["type"]) for r in regions} == {
        ("label", "video", "timelinelabels")
    }
    assert {label for r in regions for label in r["value"]["timelinelabels"]} == {"Ball"}
    assert all(item["score"] > 0 for item in results)
