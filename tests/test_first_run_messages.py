"""The first things a new user meets say what to do: which weights file goes where, which toName is wrong;
and a config with an XML declaration is accepted."""

from __future__ import annotations

import pytest

from fixtures.app_factory import VIDEO_CONFIG, make_app
from utils.service.errors import LabelConfigError
from utils.video.encoder import resolve_checkpoint


def test_missing_weights_offline_say_which_file_goes_where(tmp_path) -> None:
    model_dir = tmp_path / "models"
    with pytest.raises(LabelConfigError) as error:
        resolve_checkpoint("yolov8n-cls.pt", model_dir, (model_dir,), allow_download=False)
    message = str(error.value)
    assert f"Copy yolov8n-cls.pt into {model_dir.resolve()}" in message
    assert "YOLO_OFFLINE" in message and "model_path" in message


def test_weights_that_cannot_be_downloaded_say_which_file_goes_where(tmp_path) -> None:
    model_dir = tmp_path / "models"
    with pytest.raises(LabelConfigError, match=r"Copy my-classifier\.pt into .*models \(MODEL_DIR"):
        resolve_checkpoint("my-classifier.pt", model_dir, (model_dir,), allow_download=True)


def test_to_name_that_matches_no_object_tag_is_named(settings) -> None:
    client = make_app(settings).test_client()
    config = VIDEO_CONFIG.replace('toName="video"', 'toName="vid"')
    response = client.post("/setup", json={"project": "1.1", "schema": config})
    assert response.status_code == 422
    message = response.get_json()["message"]
    assert "toName='vid'" in message and "'video'" in message


def test_config_with_an_xml_declaration_is_accepted(settings) -> None:
    client = make_app(settings).test_client()
    config = '<?xml version="1.0" encoding="UTF-8"?>\n' + VIDEO_CONFIG
    response = client.post("/setup", json={"project": "1.1", "schema": config})
    assert response.status_code == 200, response.get_json()
