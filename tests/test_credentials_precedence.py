"""Which Label Studio credentials the service uses: LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY when both are set,
otherwise the hostname and access_token that /setup sent (a URL alone, as docker-compose always sets one, must
not hide /setup's token)."""

from __future__ import annotations

import dataclasses

import pytest

from fixtures.app_factory import VIDEO_CONFIG, make_app
from tests.local_http import media_server_handler, serving

TASK = {"id": 1, "data": {"video": "/data/upload/1/clip.mp4"}}


@pytest.fixture()
def label_studio():
    handler = media_server_handler(b"video")
    with serving(handler) as url:
        yield url, handler.seen


def predict_after_setup(settings, label_studio_url: str) -> None:
    client = make_app(settings).test_client()
    setup = {
        "project": "1.1",
        "schema": VIDEO_CONFIG,
        "hostname": label_studio_url,
        "access_token": "fromsetup",
    }
    assert client.post("/setup", json=setup).status_code == 200
    payload = {"tasks": [TASK], "project": "1.1", "label_config": VIDEO_CONFIG}
    assert client.post("/predict", json=payload).status_code == 200


def test_setup_token_is_used_when_settings_have_a_url_but_no_key(settings, label_studio) -> None:
    url, seen = label_studio
    predict_after_setup(dataclasses.replace(settings, label_studio_url=url, label_studio_api_key=""), url)
    assert seen == [("/data/upload/1/clip.mp4", "Token fromsetup")]


def test_complete_settings_win_over_setup(settings, label_studio) -> None:
    url, seen = label_studio
    complete = dataclasses.replace(settings, label_studio_url=url, label_studio_api_key="fromenv")
    predict_after_setup(complete, "http://127.0.0.1:9")  # /setup names another Label Studio
    assert seen == [("/data/upload/1/clip.mp4", "Token fromenv")]
