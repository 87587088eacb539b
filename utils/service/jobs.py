"""The embedded job engine: background training in this process, one project at a time, coalescing bursts.

Each request bumps the project's `requested` counter in a JSON state file. A job takes the project's training
lock (shared by all worker processes), and trains only if `trained < requested`, then records the requested
count it covered. So a burst of events during one training collapses into one more training on the newest
data, and two processes never train one project at once. A process that starts resumes every project whose
requests outnumber its trainings (`start()`), so work survives a crash. The interface is `JobEngine`
(`job_engine.py`); the Redis engine (`redis_jobs.py`) implements the same one across machines.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from utils.service.files import safe_name
from utils.service.job_engine import TRAIN, JobHandler, settle
from utils.service.locks import file_lock, is_locked
from utils.service.project_state import ProjectState

logger = logging.getLogger(__name__)


class TrainingJobs:
    """Runs the `train` handler in a background thread of this process; plain jobs in another."""

    name = "embedded"

    def __init__(self, state_root: Path, handlers: Mapping[str, JobHandler], debounce_s: float = 0.0):
        self.state_root = state_root
        self.debounce_s = debounce_s
        self._state = ProjectState(
            state_root,
            "jobs.json",
            {"requested": 0, "trained": 0, "runs": 0, "failures": 0, "state": "idle", "last": None},
        )
        self._handlers = dict(handlers)
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: set[str] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._plain: ThreadPoolExecutor | None = None
        self._submitted: set[str] = set()

    # --- interface -------------------------------------------------------------------------
    def request(self, project_id: str) -> dict[str, Any]:
        """Ask for a training of `project_id` on its newest data; returns at once."""

        def bump(state: dict[str, Any]) -> None:
            state["requested"] += 1
            if state["state"] == "idle":
                state["state"] = "queued"

        state = self._state.update(project_id, bump)
        self._enqueue(project_id)
        return state

    def requested(self, project_id: str) -> int | None:
        return int(self._state.read(project_id)["requested"])

    def start(self) -> None:
        """Resume projects left with untrained requests (a process killed mid-training, or before it began)."""
        for project_id, state in self.status().items():
            if state["requested"] > state["trained"]:
                logger.info(
                    "project %s: resuming training (requested %d, trained %d)",
                    project_id,
                    state["requested"],
                    state["trained"],
                )
                self._enqueue(project_id)

    def submit(self, kind: str, project_id: str, payload: dict[str, Any], job_id: str | None = None) -> str:
        job_id = job_id or f"{kind}-{project_id}-{time.time_ns()}"
        handler = self._handlers[kind]
        with self._guard:
            if job_id in self._submitted:
                return job_id
            self._submitted.add(job_id)
            if self._plain is None:
                self._plain = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plain-jobs")
            self._plain.submit(self._run_plain, job_id, handler, project_id, payload)
        return job_id

    def overview(self) -> dict[str, Any]:
        states = self.status().values()
        return {
            "engine": self.name,
            "queued": sum(s["state"] == "queued" for s in states),
            "running": sum(s["state"] == "running" for s in states),
        }

    def _enqueue(self, project_id: str) -> None:
        with self._guard:
            if project_id not in self._pending:
                self._pending.add(project_id)
                self._queue.put(project_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="training-jobs", daemon=True)
                self._thread.start()

    @staticmethod
    def _run_plain(job_id: str, handler: JobHandler, project_id: str, payload: dict[str, Any]) -> None:
        try:
            handler(project_id, payload)
        except Exception:  # noqa: BLE001 - the pool thread must survive anything
            logger.exception("job %s of project %s failed", job_id, project_id)

    def status(self) -> dict[str, dict[str, Any]]:
        """Every known project's job state, as seen by all processes."""
        result = self._state.projects()
        for project_id, state in result.items():
            if state["state"] == "running" and not is_locked(self._train_lock(project_id)):
                state["state"] = "queued" if state["requested"] > state["trained"] else "idle"
        return result

    def _train_lock(self, project_id: str) -> Path:
        return self.state_root / safe_name(project_id) / "train.lock"

    def wait_idle(self, project_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until every request of `project_id` is handled (tests, CLI tools)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.status().get(safe_name(project_id))
            if state and state["trained"] >= state["requested"] and state["state"] == "idle":
                return state
            time.sleep(0.05)
        raise TimeoutError(f"training of project {project_id} still busy after {timeout_s}s")

    # --- worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            project_id = self._queue.get()
            with self._guard:
                self._pending.discard(project_id)
            try:
                self._run_once(project_id)
            except Exception:  # noqa: BLE001 - the worker thread must survive anything
                logger.exception("training bookkeeping failed for project %s", project_id)

    def _run_once(self, project_id: str) -> None:
        settle(lambda: self.requested(project_id), self.debounce_s)
        with file_lock(self._train_lock(project_id)):
            known = self._state.read(project_id)
            target = known["requested"]
            if known["trained"] >= target:
                return  # another process already trained on these requests

            def start(state: dict[str, Any]) -> None:
                state["state"] = "running"
                state["started_at"] = time.time()

            self._state.update(project_id, start)
            started = time.monotonic()
            outcome: dict[str, Any]
            try:
                result = self._handlers[TRAIN](project_id, {})
                outcome = {"status": "finished", "error": None, **result}
                logger.info("project %s trained in %.1fs", project_id, time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the old model keeps serving
                logger.error("training of project %s failed: %s", project_id, exc, exc_info=True)
                outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            outcome.update(finished_at=time.time(), duration_s=round(time.monotonic() - started, 3))

            def finish(state: dict[str, Any]) -> None:
                state["trained"] = max(state["trained"], target)
                state["runs"] += 1
                state["failures"] += outcome["status"] == "failed"
                state["last"] = outcome
                state["state"] = "queued" if state["requested"] > state["trained"] else "idle"

            self._state.update(project_id, finish)
