"""Prediction jobs of the labeling loop on the job engine, and their progress as every process sees it.

A job is `(project, task, model version)`; a sweep job (no task) asks for every task of the project that
lacks the version. Jobs go through the `JobEngine` (threads here, or RQ workers with `REDIS_URL`) as plain
jobs of kind `predict`. A job holds a claim file named by project, task and version from submission to its
end, created exclusively and holding the job, so one task's prediction of one version is queued once across
processes, and the embedded engine resumes at start-up the claims of a process that died (its queue lived in
memory). A second file names the producer of a task's prediction of a version, created exclusively too: /predict
(whose answer Label Studio stores) or the job (which pushes). Whichever comes first produces it; the other
leaves it, so a task never holds two predictions of one version. Counters live in
`predictions.json` per project under MODEL_DIR (shared by web processes and workers), updated under a file
lock, so /health shows the same numbers everywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.job_engine import JobEngine
from utils.service.locks import is_locked
from utils.service.project_state import ProjectState

logger = logging.getLogger(__name__)

PREDICT = "predict"  # the job kind
KEEP_FAILED_PUSHES = 20
PROGRESS_INTERVAL_S = 1.0
BY_REQUEST = "predict"  # /predict answered the task; Label Studio stores that answer
BY_JOB = "job"  # the job predicts the task and pushes its prediction


@dataclass(frozen=True)
class PredictionJob:
    project_id: str
    version: str
    task_id: int | None = None  # None: a sweep over the project's tasks
    task: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    reason: str = "new task"
    sweep_round: int = field(default=0, compare=False, hash=False)  # a sweep's batches so far

    @property
    def job_id(self) -> str:
        target = f"sweep{self.sweep_round}" if self.task_id is None else f"task{self.task_id}"
        return f"{PREDICT}-{safe_name(self.project_id)}-{target}-{version_tag(self.version)}"

    def payload(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "task_id": self.task_id,
            "task": self.task,
            "sweep_round": self.sweep_round,
            "reason": self.reason,
        }

    @classmethod
    def from_payload(cls, project_id: str, payload: dict[str, Any]) -> PredictionJob:
        return cls(
            project_id,
            payload["version"],
            payload.get("task_id"),
            payload.get("task"),
            payload["reason"],
            int(payload.get("sweep_round") or 0),
        )


def version_tag(version: str) -> str:
    """A short file-name-safe tag of a model version, the last part of every job id."""
    return hashlib.sha256(version.encode()).hexdigest()[:12]


def _create_exclusively(path: Path, text: str) -> bool:
    """Write `text` to `path` unless it exists, atomically: a reader never sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offer = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    offer.write_text(text)
    try:
        os.link(offer, path)
        return True
    except FileExistsError:
        return False
    finally:
        offer.unlink(missing_ok=True)


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
    """The per-project counters: queued, running, done, failed, cancelled, answered, pushed, the running task's
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
                "answered": 0,  # left to /predict, which answered the task first
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
    """Submits prediction jobs to the engine and runs them there: `run(job, progress)` returns "done" or
    "answered" (left to /predict), raises
    Cancelled, or raises anything else, whose message is recorded as the failure's reason."""

    def __init__(self, engine: JobEngine, state_root: Path, run: RunFn, claim_ttl_s: float = 7200.0):
        self.engine = engine
        self.state_root = state_root
        self.book = PredictionBook(state_root)
        self._run = run
        self.claim_ttl_s = claim_ttl_s  # a claim older than this lost its job (a crash): it is taken over
        self._queue_id = uuid.uuid4().hex  # names this process's in-memory queue in its claims
        self._queue_lock: int | None = None  # held while the process lives: its claims are not orphans

    # --- claims ----------------------------------------------------------------------------
    def _claim_path(self, job: PredictionJob) -> Path:
        return self.state_root / safe_name(job.project_id) / "prediction-claims" / job.job_id

    def _queue_lock_path(self, queue_id: str) -> Path:
        return self.state_root / "prediction-queues" / f"{queue_id}.lock"

    def _hold_queue_lock(self) -> None:
        if self._queue_lock is None:
            path = self._queue_lock_path(self._queue_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # the OS drops it when this process dies
            self._queue_lock = fd

    def is_claimed(self, job: PredictionJob) -> bool:
        """Whether a queued or running job covers this task and version."""
        try:
            age = time.time() - self._claim_path(job).stat().st_mtime
        except FileNotFoundError:
            return False
        return age < self.claim_ttl_s

    def _claim(self, job: PredictionJob) -> bool:
        path = self._claim_path(job)
        if self.is_claimed(job):
            return False
        path.unlink(missing_ok=True)  # a stale claim: its job is gone
        self._hold_queue_lock()
        record = {"queue": self._queue_id, "running": False, "payload": job.payload()}
        return _create_exclusively(path, json.dumps(record))  # False: another process claimed it just now

    def _mark_running(self, job: PredictionJob) -> None:
        path = self._claim_path(job)
        record = read_json(path, default=None)
        if isinstance(record, dict):
            write_json_atomic(path, {**record, "running": True})

    def resume(self) -> int:
        """Queue again the jobs that a process of the embedded engine claimed and did not finish before it
        died (its queue lived in its memory); returns how many. RQ keeps its queue in Redis: nothing to do."""
        if self.engine.name != "embedded":
            return 0
        resumed = 0
        for path in sorted(self.state_root.glob("*/prediction-claims/*")):
            if path.name.startswith("."):
                continue
            record = read_json(path, default=None)
            if isinstance(record, dict) and is_locked(self._queue_lock_path(str(record.get("queue")))):
                continue  # a live process holds this job in its queue
            taken = path.with_name(f".{path.name}.{self._queue_id}")
            try:
                os.rename(path, taken)  # one process takes each orphan over
            except FileNotFoundError:
                continue
            try:
                job = PredictionJob.from_payload(path.parent.parent.name, record["payload"])
            except (TypeError, KeyError, ValueError):
                logger.warning("prediction claim %s is unreadable; dropped", path.name)
                taken.unlink()
                continue
            taken.unlink()
            if self._claim(job):
                if record.get("running"):  # it counted as running in the dead process; it is queued again
                    self.book.count(job.project_id, running=-1, queued=1)
                self.engine.submit(PREDICT, job.project_id, job.payload(), job_id=self._engine_job_id(job))
                resumed += 1
        if resumed:
            logger.info("resumed %d prediction jobs left pending by a process that stopped", resumed)
        self._forget_dead_queues()
        return resumed

    def _forget_dead_queues(self) -> None:
        for path in self.state_root.glob("prediction-queues/*.lock"):
            if path.stem != self._queue_id and not is_locked(path):
                path.unlink(missing_ok=True)

    # --- producers -------------------------------------------------------------------------
    def _producer_path(self, job: PredictionJob) -> Path:
        return self.state_root / safe_name(job.project_id) / "prediction-producers" / job.job_id

    def produce(self, job: PredictionJob, who: str) -> str:
        """Make `who` (BY_REQUEST or BY_JOB) the producer of the task's prediction of the job's version unless
        the other one already is; returns the producer."""
        path = self._producer_path(job)
        while not _create_exclusively(path, who):
            with contextlib.suppress(FileNotFoundError):
                return path.read_text()
        return who

    def is_handled(self, job: PredictionJob) -> bool:
        """Whether a job is queued for the task and version, or /predict or a job produced its prediction."""
        return self.is_claimed(job) or self._producer_path(job).exists()

    def withdraw(self, job: PredictionJob, who: str) -> None:
        """`who` could not produce the prediction: the other one may."""
        path = self._producer_path(job)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == who:
                path.unlink()

    def forget_older_versions(self, project_id: str, version: str) -> None:
        """Drop the producer records of every version but `version`: a newer one never reads them."""
        tag = version_tag(version)
        for path in (self.state_root / safe_name(project_id) / "prediction-producers").glob("*"):
            if not path.name.endswith(tag):
                path.unlink(missing_ok=True)

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
            self.engine.submit(PREDICT, job.project_id, job.payload(), job_id=self._engine_job_id(job))
        return len(new)

    @staticmethod
    def _engine_job_id(job: PredictionJob) -> str:
        return f"{job.job_id}-{time.time_ns()}"

    def handle(self, project_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The job handler the engine calls (in this process, or in an RQ worker)."""
        job = PredictionJob.from_payload(project_id, payload)
        self.book.count(project_id, queued=-1, running=1)
        self._mark_running(job)
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
        if outcome in ("failed", "cancelled") and job.task_id is not None:
            self.withdraw(job, BY_JOB)
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
