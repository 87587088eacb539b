"""A backend behind basic auth, connected the way Label Studio's UI does it (auth method BASIC). This backend
knows no Label Studio URL or key: it trains on the annotations the webhooks carried and reads media straight
from the shared LOCAL_FILES_DOCUMENT_ROOT."""

from __future__ import annotations

import pytest
import requests
from flows import Project, annotate, backend_webhooks, create_project

from fixtures.ls_api import basic_auth_header
from fixtures.shared_sets import timeseries_config

pytestmark = pytest.mark.e2e

AUTH = ("ml-user", "s3cret-pass")
TEST_FILE = "basicmotions_test0.csv"


@pytest.fixture(scope="module")
def backend(start_backend_for):
    return start_backend_for(auth=AUTH, LABEL_STUDIO_URL="", LABEL_STUDIO_API_KEY="")


@pytest.fixture(scope="module")
def created(label_studio, series_set):
    files = ["basicmotions_train0.csv", "basicmotions_train1.csv", TEST_FILE]
    config = timeseries_config(
        series_set.labels,
        ["acc_x", "acc_y", "acc_z"],
        model_classifier_epochs=10,
        model_classifier_sequence_size=128,
    )
    return create_project(
        label_studio, "basic-auth-e2e", config, [series_set.folder], series_set.tasks(files)
    )


@pytest.fixture(scope="module")
def ml(label_studio, backend, created):
    """What the UI sends when "Basic Authentication" is chosen on the model page."""
    return label_studio.api.connect_ml(
        created["project"]["id"],
        backend.url,
        auth_method="BASIC_AUTH",  # 1.23 names it so; "BASIC" is refused (400)
        basic_auth_user=AUTH[0],
        basic_auth_pass=AUTH[1],
    )


@pytest.fixture(scope="module")
def project(label_studio, backend, created, ml) -> Project:
    return Project(label_studio, backend, created["project"]["id"], ml["id"], created["tasks"])


def test_backend_refuses_requests_without_credentials(backend):
    assert requests.get(f"{backend.url}/health", timeout=5).status_code == 401
    assert requests.get(f"{backend.url}/health", auth=("ml-user", "wrong"), timeout=5).status_code == 401


def test_label_studio_connects_with_basic_auth(ml, backend):
    assert ml["state"] == "CO", f"{ml}\n{backend.log_tail()}"
    assert ml["auth_method"] == "BASIC_AUTH"
    assert ml["basic_auth_pass_is_set"] is True
    assert "basic_auth_pass" not in ml


def test_the_auto_created_webhook_needs_the_auth_header_added(project, series_set):
    """Label Studio 1.23 creates the backend's webhook without headers, so its events would get 401:
    the Authorization header must be added to the webhook (PATCH /api/webhooks/{id})."""
    (hook,) = backend_webhooks(project.ls, project.id, project.backend)
    assert not hook["headers"], hook
    annotation = project.api.create_annotation(
        project.tasks[TEST_FILE], dict(series_set.examples())[TEST_FILE]
    )
    project.api.delete_annotation(annotation["id"])
    assert project.backend.health.project_state(project.id) == {}, "an unauthenticated webhook got through"
    assert "POST /webhook -> 401" in project.backend.log_tail(200)

    project.api.patch_webhook(hook["id"], headers={"Authorization": basic_auth_header(*AUTH)})
    (hook,) = backend_webhooks(project.ls, project.id, project.backend)
    assert hook["headers"] == {"Authorization": basic_auth_header(*AUTH)}


def test_authorized_webhooks_train_and_predictions_are_stored(project, series_set):
    examples = [
        (name, result)
        for name, result in series_set.examples()
        if name in project.tasks and name != TEST_FILE
    ]
    annotate(project, examples)
    state = project.wait_trained(runs_before=0)
    assert state["requested"] >= len(examples), state
    assert state["last"]["tasks"] == len(examples), state  # annotations from the webhooks, not from the API

    predictions = project.retrieve_predictions([TEST_FILE])

    assert predictions[TEST_FILE]["result"]


def test_train_button_sends_basic_auth(project):
    runs = project.training_runs()
    project.api.train(project.ml_id)
    project.wait_trained(runs)
