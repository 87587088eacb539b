"""Every request Label Studio 1.23.2 really sent gets the status and shape Label Studio expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app_factory import make_app

PAYLOADS = sorted((Path(__file__).resolve().parents[2] / "shared/data/ls-payloads").glob("*.json"))


@pytest.fixture()
def client(settings):
    app = make_app(settings)
    yield app.test_client()
    app.config["BACKEND"].jobs.status()


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
    setup = json.loads((PAYLOADS[0].parent / "video_post_setup.json").read_text())["json"]
    predict = json.loads((PAYLOADS[0].parent / "video_post_predict.json").read_text())["json"]
    version = client.post("/setup", json=setup).get_json()["model_version"]
    results = client.post("/predict", json=predict).get_json()["results"]
    assert {r["model_version"] for r in results} == {version}
