"""Background prediction jobs of the labeling loop, and their progress as every process sees it.

A job is `(project, task id, model version)` plus the task itself when the caller has it; a sweep job
(`task_id=None`) asks for every task of the project that lacks the version. Jobs run in one thread of this
process, new tasks and /predict's deferred tasks before sweeps, each (project, task, version) at most once
in the queue. Counters live in `predictions.json` per project, updated under a file lock, so /health shows
the same numbers from every web process.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.locks import file_lock

logger = logging.getLogger(__name__)

URGENT, SWEEP = 0, 1  # queue priorities: tasks someone waits for first
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
    def key(self) -> tuple[str, int | None, str]:
        return (self.project_id, self.task_id, self.version)


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
    """The per-project counters: queued, running, done, failed, cancelled, the running task's frames, and
    the most recent failed pushes with their reasons."""

    def __init__(self, state_root: Path):
        self.state_root = state_root

    def _path(self, project_id: str) -> Path:
        return self.state_root / safe_name(project_id) / "predictions.json"

    def _read(self, project_id: str) -> dict[str, Any]:
        base = {
            "queued": 0,
            "running": 0,
            "done": 0,
            "failed": 0,
            "cancelled": 0,
            "pushed": 0,
            "current": None,
            "failed_pushes": [],
        }
        state = read_json(self._path(project_id), default={})
        return {**base, **state} if isinstance(state, dict) else base

    def update(self, project_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        path = self._path(project_id)
        with file_lock(path.with_suffix(".lock")):
            state = self._read(project_id)
            change(state)
            write_json_atomic(path, state)
            return state

    def count(self, project_id: str, **deltas: int) -> None:
        def apply(state: dict[str, Any]) -> None:
            for name, delta in deltas.items():
                state[name] = max(0, state[name] + delta)

        self.update(project_id, apply)

    def failed_push(self, job: PredictionJob, reason: str) -> None:
        entry = {"task": job.task_id, "version": job.version, "reason": reason, "at": time.time()}

        def add(state: dict[str, Any]) -> None:
            state["failed_pushes"] = [*state["failed_pushes"], entry][-KEEP_FAILED_PUSHES:]

        self.update(job.project_id, add)

    def status(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        if not self.state_root.is_dir():
            return result
        for project_dir in sorted(self.state_root.iterdir()):
            if (project_dir / "predictions.json").is_file():
                result[project_dir.name] = self._read(project_dir.name)
        return result


RunFn = Callable[[PredictionJob, JobProgress], str]


class PredictionJobs:
    """The embedded engine: `run(job, progress)` in a background thread of this process. `run` returns
    "done" or "cancelled", or raises: the exception's message is recorded as the failure's reason."""

    def __init__(self, state_root: Path, run: RunFn):
        self.book = PredictionBook(state_root)
        self._run = run
        self._queue: queue.PriorityQueue[tuple[int, int, PredictionJob]] = queue.PriorityQueue()
        self._pending: set[tuple[str, int | None, str]] = set()
        self._order = itertools.count()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, jobs: list[PredictionJob], priority: int = URGENT) -> int:
        """Queue jobs not already queued; returns how many were added."""
        with self._guard:
            new = [job for job in dict.fromkeys(jobs) if job.key not in self._pending]
            self._pending.update(job.key for job in new)
        counts: dict[str, int] = {}
        for job in new:
            if job.task_id is not None:  # sweeps only queue task jobs; they are not counted themselves
                counts[job.project_id] = counts.get(job.project_id, 0) + 1
        for project_id, n in counts.items():
            self.book.count(project_id, queued=n)  # before the worker can take them
        with self._guard:
            for job in new:
                self._queue.put((priority, next(self._order), job))
            if new and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._work, name="prediction-jobs", daemon=True)
                self._thread.start()
        return len(new)

    def status(self) -> dict[str, dict[str, Any]]:
        return self.book.status()

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Block until this process has no queued or running job (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._guard:
                if not self._pending:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"prediction jobs still busy after {timeout_s}s")

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            try:
                self._run_one(job)
            except Exception:  # noqa: BLE001 - the worker thread must survive anything
                logger.exception("prediction job bookkeeping failed: %s", job.key)
            finally:
                with self._guard:
                    self._pending.discard(job.key)

    def _run_one(self, job: PredictionJob) -> None:
        counted = job.task_id is not None
        if counted:
            self.book.count(job.project_id, queued=-1, running=1)
        outcome = "failed"
        try:
            outcome = self._run(job, JobProgress(self.book, job))
        except Cancelled:
            outcome = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded with its reason
            logger.error("prediction job %s failed: %s", job.key, exc)
            if counted:
                self.book.failed_push(job, f"{type(exc).__name__}: {exc}")
        if counted:

            def finish(state: dict[str, Any]) -> None:
                state["running"] = max(0, state["running"] - 1)
                state[outcome] += 1
                if state["current"] and state["current"].get("task") == job.task_id:
                    state["current"] = None

            self.book.update(job.project_id, finish)
