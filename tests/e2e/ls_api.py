"""A small client for the parts of Label Studio's REST API the end-to-end tests use, and for the backend's
/health job states. Errors carry the request and Label Studio's answer, so a failing test says what broke."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import requests
from servers import LS_TOKEN, Server, wait_until


class ApiError(AssertionError):
    """A non-2xx answer: the message names the request and quotes the body."""


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class JsonClient:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout_s: float = 120):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout_s, **kwargs)
        if not response.ok:
            raise ApiError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None


class LabelStudioApi(JsonClient):
    """Label Studio 1.23 REST API with a legacy token."""

    def __init__(self, url: str, token: str):
        super().__init__(url, {"Authorization": f"Token {token}"})

    # --- projects, storage, tasks ------------------------------------------------------------
    def create_project(self, title: str, label_config: str) -> dict:
        return self.call("POST", "/api/projects", json={"title": title, "label_config": label_config})

    def update_project(self, project: int, **fields: Any) -> dict:
        return self.call("PATCH", f"/api/projects/{project}", json=fields)

    def add_local_storage(self, project: int, path: str) -> dict:
        """A local-files storage makes `/data/local-files/?d=...` readable for the project's tasks."""
        return self.call(
            "POST",
            "/api/storages/localfiles",
            json={"project": project, "path": path, "title": "e2e media", "use_blob_urls": False},
        )

    def import_tasks(self, project: int, tasks: list[dict]) -> list[dict]:
        """Imports `tasks` and returns all the project's tasks, oldest first (so new ones come last)."""
        self.call("POST", f"/api/projects/{project}/import", json=tasks)
        return self.tasks(project)

    def tasks(self, project: int) -> list[dict]:
        answer = self.call(
            "GET", "/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"}
        )
        tasks = answer["tasks"] if isinstance(answer, dict) else answer
        return sorted(tasks, key=lambda t: t["id"])

    def task(self, task: int) -> dict:
        return self.call("GET", f"/api/tasks/{task}")

    # --- annotations -------------------------------------------------------------------------
    def create_annotation(self, task: int, result: list[dict]) -> dict:
        return self.call("POST", f"/api/tasks/{task}/annotations/", json={"result": result})

    def update_annotation(self, annotation: int, result: list[dict]) -> dict:
        return self.call("PATCH", f"/api/annotations/{annotation}/", json={"result": result})

    def delete_annotation(self, annotation: int) -> None:
        self.call("DELETE", f"/api/annotations/{annotation}/")

    # --- ML backend ----------------------------------------------------------------------------
    def connect_ml(self, project: int, url: str, **fields: Any) -> dict:
        return self.call(
            "POST",
            "/api/ml",
            json={"url": url, "project": project, "title": "temporal", "is_interactive": False, **fields},
        )

    def ml_backend(self, ml_id: int) -> dict:
        return self.call("GET", f"/api/ml/{ml_id}")

    def train(self, ml_id: int) -> Any:
        return self.call("POST", f"/api/ml/{ml_id}/train")

    def webhooks(self, project: int) -> list[dict]:
        return self.call("GET", "/api/webhooks", params={"project": project})

    def patch_webhook(self, webhook: int, **fields: Any) -> dict:
        return self.call("PATCH", f"/api/webhooks/{webhook}", json=fields)

    # --- predictions ---------------------------------------------------------------------------
    def retrieve_predictions(self, project: int, task_ids: list[int]) -> dict:
        """The Data Manager action 'Retrieve predictions': Label Studio calls /predict and stores results."""
        return self.call(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project},
            json={"selectedItems": {"all": False, "included": task_ids}},
        )

    def predictions(self, task: int) -> list[dict]:
        return self.call("GET", "/api/predictions", params={"task": task})


class BackendHealth(JsonClient):
    """The backend's /health, which reports training job states per Label Studio project."""

    def project_state(self, project: int) -> dict:
        return self.call("GET", "/health")["training"].get(str(project), {})

    def wait_trained(self, project: int, runs_before: int, timeout_s: float = 300) -> dict:
        """Waits until a training run after `runs_before` finished and nothing more is queued."""
        started = time.monotonic()

        def done() -> dict | None:
            state = self.project_state(project)
            finished = state.get("runs", 0) > runs_before and state.get("state") == "idle"
            return state if finished and state.get("trained") == state.get("requested") else None

        state = wait_until(done, timeout_s, f"training of project {project} after run {runs_before}", 1.0)
        state["waited_s"] = round(time.monotonic() - started, 1)
        return state


class LabelStudio:
    """A running Label Studio with its API client."""

    def __init__(self, server: Server, document_root: Path):
        self.server = server
        self.url = server.url
        self.api = LabelStudioApi(server.url, LS_TOKEN)
        self.document_root = document_root


class Backend:
    """A running backend (gunicorn) with its /health client and the auth Label Studio must use."""

    def __init__(self, server: Server, auth: tuple[str, str] | None):
        self.server = server
        self.url = server.url
        self.auth = auth
        headers = {"Authorization": basic_auth_header(*auth)} if auth else {}
        self.health = BackendHealth(server.url, headers)

    def log_tail(self, lines: int = 80) -> str:
        return self.server.log_tail(lines)
