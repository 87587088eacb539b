"""Bad input gets a clear JSON error (or an empty per-task result) and the service keeps serving."""

from __future__ import annotations

import pytest

from fixtures.app_factory import VIDEO_CONFIG, annotation_event, make_app


@pytest.fixture()
def client(settings):
    return make_app(settings).test_client()


def assert_json_error(response, status: int, words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] and words.lower() in body["message"].lower()


def test_body_that_is_not_json(client) -> None:
    response = client.post("/webhook", data="{not json", content_type="application/json")
    assert_json_error(response, 400, "JSON object")
    assert_json_error(
        client.post("/predict", data="[1, 2]", content_type="application/json"), 400, "JSON object"
    )


def test_webhook_without_action(client) -> None:
    assert_json_error(client.post("/webhook", json={"project": {"id": 1}}), 400, "'action'")


def test_webhook_without_project(client) -> None:
    assert_json_error(client.post("/webhook", json={"action": "START_TRAINING"}), 400, "'project'")


def test_unknown_action_is_acknowledged_and_ignored(client) -> None:
    response = client.post("/webhook", json={"action": "SOMETHING_NEW", "project": {"id": 1}})
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"


def test_annotation_event_without_annotation(client) -> None:
    event = annotation_event("ANNOTATION_CREATED", 1, 1, "Ball")
    del event["annotation"]
    assert_json_error(client.post("/webhook", json=event), 400, "'annotation'")


def test_broken_label_config(client) -> None:
    response = client.post("/setup", json={"project": "1.1", "schema": "<View><TimelineLabels name="})
    assert_json_error(response, 422, "cannot be parsed")


def test_config_without_supported_control(client) -> None:
    config = '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>'
    assert_json_error(
        client.post("/setup", json={"project": "1.1", "schema": config}), 422, "no supported control"
    )
    webhook = {"action": "START_TRAINING", "project": {"id": 1, "label_config": config}}
    assert_json_error(client.post("/webhook", json=webhook), 422, "no supported control")


def test_empty_task_list(client) -> None:
    response = client.post("/predict", json={"tasks": [], "project": "1.1", "label_config": VIDEO_CONFIG})
    assert_json_error(response, 400, "empty")


@pytest.mark.parametrize(
    "task",
    [
        {"id": 1, "data": {}},  # no media field
        {"id": 2, "data": {"video": ""}},
        {"id": 3, "data": {"video": "http://127.0.0.1:9/missing.mp4"}},  # unreachable
        {"id": 4, "data": {"video": "/etc/passwd"}},  # local file outside MEDIA_ROOTS
        {"id": 5, "data": {"video": "/data/upload/1/x.mp4"}},  # relative, no Label Studio configured
        "not a task",
    ],
)
def test_unusable_task_gets_empty_result_and_batch_succeeds(client, task, data_root) -> None:
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Goal"))
    client.application.config["BACKEND"].jobs.wait_idle("1")
    good = {"id": 9, "data": {"video": str(data_root / "video/spliced/spliced_train0.mp4")}}
    payload = {"tasks": [task, good], "project": "1.1", "label_config": VIDEO_CONFIG}
    response = client.post("/predict", json=payload)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == 2 and results[0]["result"] == [] and results[0]["error"]
    assert [r["value"]["timelinelabels"] for r in results[1]["result"]] == [["Goal"]]  # the good one predicts
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("project", ["../../etc", "1/../../x", "..", {"id": "../x"}, True])
def test_path_traversal_in_project_id_is_refused(client, project) -> None:
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": project})
    assert response.status_code == 400


def test_path_traversal_in_control_name_stays_inside_model_dir(settings) -> None:
    app = make_app(settings)
    backend = app.config["BACKEND"]
    config = VIDEO_CONFIG.replace('name="label"', 'name="../../../escape"')
    event = annotation_event("ANNOTATION_CREATED", 1, 1, "Ball")
    event["project"]["label_config"] = config
    event["annotation"]["result"][0]["from_name"] = "../../../escape"
    backend.handle_event("ANNOTATION_CREATED", event)
    backend.jobs.wait_idle("1")
    assert backend.jobs.status()["1"]["last"]["status"] == "finished"
    root = settings.model_dir.parent
    written = [p for p in root.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(settings.model_dir) for p in written)
    assert not (root.parent / "escape").exists()
