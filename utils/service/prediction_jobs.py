"""Prediction jobs of the labeling loop on the job engine, and their progress as every process sees it.

A job is `(project, task, model version)`; a sweep job (no task) asks for every task of the project that
lacks the version. Jobs go through the `JobEngine` (threads here, or RQ workers with `REDIS_URL`) as plain
jobs of kind `predict`. A job holds a claim file named by project, task and version from submission to its
end, created exclusively: one task's prediction of one version is queued once across processes, and /predict
leaves a claimed task to its job instead of predicting it a second time. Counters live in
`predictions.json` per project under MODEL_DIR (shared by web processes and workers), updated under a file
lock, so /health shows the same numbers everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.service.files import safe_name
from utils.service.job_engine import JobEngine
from utils.service.project_state import ProjectState

logger = logging.getLogger(__name__)

PREDICT = "predict"  # the job kind
KEEP_FAILED_PUSHES = 20
PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class PredictionJob:
    project_id: str
    version: str
    task_id: int | None = None  # None: a sweep over the project's tasks
    task: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    reason: str = "new task"

    @property
    def job_id(self) -> str:
        version = hashlib.sha256(self.version.encode()).hexdigest()[:12]
        target = "sweep" if self.task_id is None else f"task{self.task_id}"
        return f"{PREDICT}-{safe_name(self.project_id)}-{target}-{version}"

    def payload(self) -> dict[str, Any]:
        return {"version": self.version, "task_id": self.task_id, "task": self.task, "reason": self.reason}

    @classmethod
    def from_payload(cls, project_id: str, payload: dict[str, Any]) -> PredictionJob:
        return cls(
            project_id, payload["version"], payload.get("task_id"), payload.get("task"), payload["reason"]
        )


class Cancelled(Exception):
    """The job's model version is no longer the project's newest; a newer version's jobs replace it."""


class JobProgress:
    """Reports frames done of total for the running job, at most once a second."""

    def __init__(self, book: PredictionBook, job: PredictionJob):
        self._book, self._job = book, job
        self._last = 0.0

    def __call__(self, frames_done: int, frames_total: int) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL_S and frames_done < frames_total:
            return
        self._last = now
        current = {"task": self._job.task_id, "frames_done": frames_done, "frames_total": frames_total}
        self._book.update(self._job.project_id, lambda state: state.update(current=current))


class PredictionBook:
    """The per-project counters: queued, running, done, failed, cancelled, pushed, the running task's
    frames, and the most recent failed jobs with their reasons."""

    def __init__(self, state_root: Path):
        self._state = ProjectState(
            state_root,
            "predictions.json",
            {
                "queued": 0,
                "running": 0,
                "done": 0,
                "failed": 0,
                "cancelled": 0,
                "pushed": 0,
                "current": None,
                "failed_pushes": [],
            },
        )

    def update(self, project_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return self._state.update(project_id, change)

    def count(self, project_id: str, **deltas: int) -> None:
        def apply(state: dict[str, Any]) -> None:
            for name, delta in deltas.items():
                state[name] = max(0, state[name] + delta)

        self.update(project_id, apply)

    def finish(self, job: PredictionJob, outcome: str, reason: str | None = None) -> None:
        entry = {"task": job.task_id, "version": job.version, "reason": reason, "at": time.time()}

        def apply(state: dict[str, Any]) -> None:
            state["running"] = max(0, state["running"] - 1)
            state[outcome] += 1
            if state["current"] and state["current"].get("task") == job.task_id:
                state["current"] = None
            if reason is not None:
                state["failed_pushes"] = [*state["failed_pushes"], entry][-KEEP_FAILED_PUSHES:]

        self.update(job.project_id, apply)

    def status(self) -> dict[str, dict[str, Any]]:
        return self._state.projects()


RunFn = Callable[[PredictionJob, JobProgress], str]


class PredictionJobs:
    """Submits prediction jobs to the engine and runs them there: `run(job, progress)` returns "done", raises
    Cancelled, or raises anything else, whose message is recorded as the failure's reason."""

    def __init__(self, engine: JobEngine, state_root: Path, run: RunFn, claim_ttl_s: float = 7200.0):
        self.engine = engine
        self.state_root = state_root
        self.book = PredictionBook(state_root)
        self._run = run
        self.claim_ttl_s = claim_ttl_s  # a claim older than this lost its job (a crash): it is taken over

    # --- claims ----------------------------------------------------------------------------
    def _claim_path(self, job: PredictionJob) -> Path:
        return self.state_root / safe_name(job.project_id) / "prediction-claims" / job.job_id

    def is_claimed(self, job: PredictionJob) -> bool:
        """Whether a queued or running job covers this task and version."""
        try:
            age = time.time() - self._claim_path(job).stat().st_mtime
        except FileNotFoundError:
            return False
        return age < self.claim_ttl_s

    def _claim(self, job: PredictionJob) -> bool:
        path = self._claim_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.is_claimed(job):
            return False
        path.unlink(missing_ok=True)  # a stale claim: its job is gone
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False  # another process claimed it just now
        return True

    # --- jobs ------------------------------------------------------------------------------
    def submit(self, jobs: list[PredictionJob]) -> int:
        """Queue the jobs no process has queued yet; returns how many were added."""
        new = [job for job in dict.fromkeys(jobs) if self._claim(job)]
        counts: dict[str, int] = {}
        for job in new:
            counts[job.project_id] = counts.get(job.project_id, 0) + 1
        for project_id, n in counts.items():
            self.book.count(project_id, queued=n)  # before a worker can take them
        for job in new:
            self.engine.submit(
                PREDICT, job.project_id, job.payload(), job_id=f"{job.job_id}-{time.time_ns()}"
            )
        return len(new)

    def handle(self, project_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The job handler the engine calls (in this process, or in an RQ worker)."""
        job = PredictionJob.from_payload(project_id, payload)
        self.book.count(project_id, queued=-1, running=1)
        outcome, reason = "failed", None
        try:
            outcome = self._run(job, JobProgress(self.book, job))
        except Cancelled:
            outcome = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded with its reason
            logger.error("prediction job %s failed: %s", job.job_id, exc)
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._claim_path(job).unlink(missing_ok=True)
        self.book.finish(job, outcome, reason)
        return {"status": outcome, "reason": reason}

    def status(self) -> dict[str, dict[str, Any]]:
        return self.book.status()

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Block until no project has prediction jobs queued or running (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(s["queued"] == 0 and s["running"] == 0 for s in self.status().values()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"prediction jobs still busy after {timeout_s}s")
