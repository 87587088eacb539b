"""One small interface for background work, two engines behind it: embedded (threads in this process,
file locks, the default) and Redis + RQ (`REDIS_URL`: web processes enqueue, `./run.sh worker` processes run).
Control models and the HTTP layer never know which one runs their jobs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from utils.service.settings import Settings

TRAIN = "train"  # the job kind that is coalesced per project; every other kind is a plain job
SETTLE_MAX_FACTOR = 10  # a burst delays its training by at most this many quiet periods

JobHandler = Callable[[str, dict[str, Any]], dict[str, Any]]
"""`handler(project_id, payload) -> result`: the work of one job kind, run by whichever engine."""


class JobEngine(Protocol):
    name: str

    def start(self) -> None:
        """Called once when a web process starts: resume work left pending by a crash or an outage."""

    def request(self, project_id: str) -> dict[str, Any]:
        """Ask for a training of `project_id` on its newest data; returns its counters at once."""

    def requested(self, project_id: str) -> int | None:
        """How many trainings of `project_id` were asked for so far; None when the engine cannot tell now.
        A running training compares it with the count at its start to learn of newer requests."""

    def submit(self, kind: str, project_id: str, payload: dict[str, Any], job_id: str | None = None) -> str:
        """Queue one plain job (e.g. predictions to push); a repeated `job_id` is queued once."""

    def status(self) -> dict[str, dict[str, Any]]:
        """Every known project's training state, the same from every web process."""

    def overview(self) -> dict[str, Any]:
        """Engine, queue lengths and live workers, for /health and /metrics."""

    def wait_idle(self, project_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until every training request of `project_id` is handled (tests, CLI tools)."""


def settle(count: Callable[[], int | None], quiet_s: float) -> None:
    """Wait until `count()` (a project's training requests) has not changed for `quiet_s`, at most
    `SETTLE_MAX_FACTOR` times as long: a burst of annotations (a bulk import, a script) then trains once, on
    all of them, instead of once on its first and again on the rest."""
    if quiet_s <= 0:
        return
    deadline = time.monotonic() + SETTLE_MAX_FACTOR * quiet_s
    last, quiet_since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(min(0.1, quiet_s))
        now = count()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def make_job_engine(
    settings: Settings, state_root: Path, handlers: Mapping[str, JobHandler], job_target: str
) -> JobEngine:
    """The Redis engine when `REDIS_URL` is set, else the embedded one; `job_target` is the importable
    function (`module.name`) RQ workers call with `(kind, project_id, payload)`."""
    if settings.redis_url:
        from utils.service.redis_jobs import RedisJobs

        return RedisJobs(settings, state_root, handlers, job_target)
    from utils.service.jobs import TrainingJobs

    return TrainingJobs(state_root, handlers, settings.train_debounce_s)
