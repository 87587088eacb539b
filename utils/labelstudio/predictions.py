"""Writing predictions into Label Studio through its API, at most one per task and model version, and
listing which tasks of a project still lack a prediction of a given version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from utils.labelstudio.auth import LabelStudioCredentials

logger = logging.getLogger(__name__)

RETRIED_STATUSES = {408, 425, 429, 500, 502, 503, 504}
ONE_TRY = {"max_retries": 0}  # the SDK retries on its own otherwise; the backoff here is the only one


class PushError(Exception):
    """A prediction could not be written into Label Studio; the message is the reason shown in /health."""


@dataclass(frozen=True)
class TaskSummary:
    """What the labeling loop needs to know of a task: its data, whether it is labelled, and the model
    versions of its predictions."""

    id: int
    data: dict[str, Any]
    labelled: bool
    versions: frozenset[str]


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status_code} from Label Studio: {str(exc.body)[:300]}"
    return f"{type(exc).__name__}: {exc}"


def _retriable(exc: Exception) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code is None or exc.status_code in RETRIED_STATUSES
    return isinstance(exc, httpx.TransportError | OSError)


class PredictionPusher:
    """Pushes predictions of one Label Studio; failed calls are retried with exponential backoff."""

    def __init__(
        self,
        credentials: LabelStudioCredentials,
        attempts: int = 4,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = LabelStudio(base_url=credentials.url, api_key=credentials.api_key, timeout=60)
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - the SDK raises ApiError, httpx and pydantic errors
                reason = _describe(exc)
                if attempt == self.attempts or not _retriable(exc):
                    raise PushError(f"{what}: {reason} (attempt {attempt} of {self.attempts})") from exc
                delay = self.backoff_s * 2 ** (attempt - 1)
                logger.warning("%s failed (%s); retrying in %.1f s", what, reason, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def versions_of(self, task_id: int) -> set[str]:
        """Model versions of the predictions the task already holds."""
        predictions = self._call(
            f"listing predictions of task {task_id}",
            lambda: self.client.predictions.list(task=task_id, request_options=ONE_TRY),
        )
        return {str(p.model_version) for p in predictions if p.model_version is not None}

    def push(self, task_id: int, result: list[dict[str, Any]], score: float, model_version: str) -> bool:
        """Create the task's prediction of `model_version` unless it has one: True when created. Checking
        first makes a job that re-runs after a crash, or a task predicted twice, leave a single prediction."""
        if model_version in self.versions_of(task_id):
            logger.info("task %s already holds a prediction of %s; not pushed again", task_id, model_version)
            return False
        self._call(
            f"creating the prediction of task {task_id}",
            lambda: self.client.predictions.create(
                task=task_id,
                result=result,
                score=float(score),
                model_version=model_version,
                request_options=ONE_TRY,
            ),
        )
        return True

    def project_tasks(self, project_id: str) -> list[TaskSummary]:
        """Every task of the project (paged by the SDK). The list, unlike `GET /api/tasks/<id>`, never makes
        Label Studio call /predict itself."""

        def fetch() -> list[TaskSummary]:
            pager = self.client.tasks.list(
                project=int(project_id), fields="all", page_size=100, request_options=ONE_TRY
            )
            return [
                _summary(task.model_dump() if hasattr(task, "model_dump") else dict(task)) for task in pager
            ]

        return self._call(f"listing the tasks of project {project_id}", fetch)


def tasks_to_repredict(tasks: list[TaskSummary], version: str, limit: int) -> list[TaskSummary]:
    """The tasks without a prediction of `version`, unlabelled ones first (they need pre-labels most), at
    most `limit` of them."""
    missing = [task for task in tasks if version not in task.versions]
    return sorted(missing, key=lambda task: (task.labelled, task.id))[:limit]


def _summary(record: dict[str, Any]) -> TaskSummary:
    predictions = record.get("predictions") or []
    versions = {
        str(p.get("model_version")) for p in predictions if isinstance(p, dict) and p.get("model_version")
    }
    labelled = bool(record.get("is_labeled") or record.get("total_annotations"))
    return TaskSummary(int(record["id"]), record.get("data") or {}, labelled, frozenset(versions))
