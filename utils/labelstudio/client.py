"""Reading a project's annotated tasks from Label Studio's API (the SDK handles paging and tokens)."""

from __future__ import annotations

import logging
from typing import Any

from label_studio_sdk.client import LabelStudio

from utils.labelstudio.auth import LabelStudioCredentials

logger = logging.getLogger(__name__)


def fetch_annotated_tasks(credentials: LabelStudioCredentials, project_id: str) -> list[dict[str, Any]]:
    """Every task of the project that has annotations, with its annotations, as plain dicts."""
    client = LabelStudio(base_url=credentials.url, api_key=credentials.api_key, timeout=60)
    pager = client.tasks.list(project=int(project_id), fields="all", only_annotated=True, page_size=100)
    tasks = []
    for task in pager:
        record = task.model_dump() if hasattr(task, "model_dump") else dict(task)
        if record.get("annotations"):
            tasks.append(record)
    logger.info("fetched %d annotated tasks of project %s from Label Studio", len(tasks), project_id)
    return tasks
