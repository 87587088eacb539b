"""Optional HTTP basic auth on every route."""

from __future__ import annotations

import base64
from dataclasses import replace

from fixtures.app_factory import make_app


def header(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_every_route_needs_basic_auth_when_configured(settings) -> None:
    client = make_app(replace(settings, basic_auth_user="ls", basic_auth_pass="s3cret")).test_client()
    for method, path in [
        ("GET", "/health"),
        ("GET", "/"),
        ("POST", "/setup"),
        ("POST", "/predict"),
        ("POST", "/webhook"),
        ("GET", "/metrics"),
    ]:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, path
        assert response.get_json()["error"] == "UnauthorizedError"
    assert client.get("/health", headers=header("ls", "wrong")).status_code == 401
    assert client.get("/health", headers=header("ls", "s3cret")).status_code == 200


def test_no_auth_needed_by_default(settings) -> None:
    assert make_app(settings).test_client().get("/health").status_code == 200
