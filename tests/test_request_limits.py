"""Oversized, deeply nested and mislabelled request bodies get a clear JSON answer, never a 500."""

from __future__ import annotations

import dataclasses
import json

from fixtures.app_factory import VIDEO_CONFIG, make_app


def test_body_over_the_limit_is_413_json(settings) -> None:
    client = make_app(dataclasses.replace(settings, max_request_bytes=1000)).test_client()
    body = json.dumps({"action": "START_TRAINING", "project": 1, "pad": "x" * 2000})
    response = client.post("/webhook", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "MAX_REQUEST_BYTES" in response.get_json()["message"]
    assert client.get("/health").status_code == 200


def test_deeply_nested_json_is_400_not_500(settings) -> None:
    client = make_app(settings).test_client()
    body = '{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["message"]


def test_json_body_without_json_content_type_is_parsed(settings) -> None:
    client = make_app(settings).test_client()
    body = json.dumps({"project": "1.1", "schema": VIDEO_CONFIG})
    response = client.post("/setup", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "model_version" in response.get_json()


def test_body_that_is_not_json_names_its_content_type(settings) -> None:
    client = make_app(settings).test_client()
    response = client.post("/setup", data="project=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert "not valid JSON" in message and "application/x-www-form-urlencoded" in message
