"""Model versions: the last N kept per control, listed by GET /versions, pinned and unpinned by an
authenticated POST /versions, and seen at once by every app instance on the same MODEL_DIR."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fixtures.app_factory import VIDEO_CONFIG, annotation_event, make_app
from utils.service.model_store import ModelStore
from utils.service.settings import Settings

API_KEY = "secret-token"
AUTH = {"Authorization": f"Token {API_KEY}"}


@pytest.fixture()
def versioned(settings: Settings, tmp_path: Path) -> Settings:
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"not decoded by the test models")
    return dataclasses.replace(
        settings, media_roots=(media.resolve(),), label_studio_api_key=API_KEY, model_versions_kept=3
    )


def train(app, label: str, annotation_id: int) -> str:
    """One training on a new annotation of `label`; returns the control version it produced."""
    backend = app.config["BACKEND"]
    event = annotation_event("ANNOTATION_CREATED", annotation_id, annotation_id, label)
    app.test_client().post("/webhook", json=event)
    state = backend.jobs.wait_idle("1")
    return state["last"]["metrics"]["label"]["version"]


def predict(client, media: Path) -> dict:
    payload = {
        "tasks": [{"id": 1, "data": {"video": str(media / "clip.mp4")}}],
        "project": "1.1700000000",
        "label_config": VIDEO_CONFIG,
    }
    return client.post("/predict", json=payload).get_json()["results"][0]


def setup_version(client) -> str:
    body = {"project": "1.1700000000", "schema": VIDEO_CONFIG}
    return client.post("/setup", json=body).get_json()["model_version"]


def test_pinning_an_old_version_changes_predict_and_setup_in_every_instance_at_once(versioned) -> None:
    trainer, other = make_app(versioned), make_app(versioned)  # two workers' worth of state, one MODEL_DIR
    media = versioned.media_roots[0]
    first = train(trainer, "Ball", 1)
    client = other.test_client()
    assert predict(client, media)["result"][0]["value"]["timelinelabels"] == ["Ball"]
    version_first = setup_version(client)
    train(trainer, "Goal", 2)
    second = train(trainer, "Goal", 3)
    assert predict(client, media)["result"][0]["value"]["timelinelabels"] == ["Goal"]

    pinned = trainer.test_client().post(
        "/versions", json={"project": 1, "control": "label", "version": first}, headers=AUTH
    )
    assert pinned.status_code == 200, pinned.get_json()
    after = predict(client, media)
    assert after["model_version"] == setup_version(client) == version_first
    assert after["result"][0]["value"]["timelinelabels"] == ["Ball"]

    listed = client.get("/versions?project=1").get_json()["controls"]["label"]
    assert [v["version"] for v in listed if v["pinned"]] == [first]
    assert len(listed) == 3 and listed[0]["training"]["tasks"] == 3  # newest first, with its summary

    unpinned = trainer.test_client().post(
        "/versions", json={"project": 1, "control": "label", "version": None}, headers=AUTH
    )
    assert unpinned.status_code == 200
    assert predict(client, media)["model_version"].startswith(second)


def test_a_training_while_pinned_keeps_the_pinned_version_serving(versioned) -> None:
    app = make_app(versioned)
    first = train(app, "Ball", 1)
    app.test_client().post(
        "/versions", json={"project": 1, "control": "label", "version": first}, headers=AUTH
    )
    later = train(app, "Goal", 2)
    store = app.config["BACKEND"].store.control_store("1", "label")
    assert store.current_version() == first and store.is_pinned()
    assert later in store.version_names()
    assert app.config["BACKEND"].jobs.status()["1"]["last"]["metrics"]["label"]["serving"] is False


def test_versions_beyond_the_limit_are_deleted_but_never_the_pinned_one(versioned) -> None:
    app = make_app(versioned)
    first = train(app, "Ball", 1)
    app.test_client().post(
        "/versions", json={"project": 1, "control": "label", "version": first}, headers=AUTH
    )
    for i in range(2, 7):
        train(app, "Goal", i)
    store = app.config["BACKEND"].store.control_store("1", "label")
    names = store.version_names()
    assert len(names) == 3 and first in names
    assert not [p for p in (store.root / "versions").iterdir() if p.name.startswith(".")]


def test_pinning_needs_the_api_token(versioned) -> None:
    app = make_app(versioned)
    first = train(app, "Ball", 1)
    client = app.test_client()
    body = {"project": 1, "control": "label", "version": first}
    assert client.post("/versions", json=body).status_code == 401
    assert client.post("/versions", json=body, headers={"Authorization": "Token wrong"}).status_code == 401
    assert not app.config["BACKEND"].store.control_store("1", "label").is_pinned()


def test_pinning_without_any_credentials_configured_is_forbidden(settings) -> None:
    response = (
        make_app(settings)
        .test_client()
        .post("/versions", json={"project": 1, "control": "label", "version": "x"})
    )
    assert response.status_code == 403
    assert "LABEL_STUDIO_API_KEY" in response.get_json()["message"]


@pytest.mark.parametrize(
    "body,status",
    [
        ({"project": 1, "control": "label", "version": "20990101T000000000000-abcdef"}, 404),
        ({"project": 1, "control": "nope", "version": None}, 400),
        ({"project": 1, "control": "label"}, 400),
        ({"project": 2, "control": "label", "version": None}, 404),
    ],
)
def test_bad_pin_requests_get_a_clear_error(versioned, body: dict, status: int) -> None:
    app = make_app(versioned)
    train(app, "Ball", 1)
    response = app.test_client().post("/versions", json=body, headers=AUTH)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["message"]


def test_listing_needs_a_known_project(versioned) -> None:
    client = make_app(versioned).test_client()
    assert client.get("/versions").status_code == 400
    assert client.get("/versions?project=5").status_code == 404


def test_unpin_returns_to_the_newest_accepted_version(tmp_path) -> None:
    store = ModelStore(tmp_path).control_store("1", "label")
    good = store.save({"w": torch.zeros(1)}, {})
    store.record(good, {"accepted": True})
    staged = store.staging()
    rejected = staged.save({"w": torch.ones(1)}, {})
    store.record(rejected, {"accepted": False})
    assert store.current_version() == good  # a staged candidate does not serve by itself
    store.pin(rejected)  # a person may still choose it
    assert store.load()[0]["w"].item() == 1.0
    assert store.unpin() == good and not store.is_pinned()
