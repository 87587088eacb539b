"""Entry point of a job worker for the Redis engine: `./run.sh worker` (or `python worker.py`).

It is RQ's own worker (a work-horse process per job) with the service's settings, plus one maintenance task
RQ does not know: re-queueing trainings whose worker died. `perform` is the function every RQ job calls, so
a plain `rq worker` started in this directory with the same environment runs the same jobs (see README).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Worker
from rq.job import Job

from model import TemporalBackend
from utils.service.redis_jobs import RedisJobs
from utils.service.settings import Settings

logger = logging.getLogger("backend.worker")

_backend: TemporalBackend | None = None


def backend() -> TemporalBackend:
    """This process's backend, built from the environment on first use (a plain `rq worker` comes here)."""
    global _backend
    if _backend is None:
        _backend = TemporalBackend(Settings.from_env())
    return _backend


def perform(kind: str, project_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The body of every RQ job this service enqueues."""
    engine = backend().jobs
    if not isinstance(engine, RedisJobs):
        raise RuntimeError("REDIS_URL is not set in the worker's environment")
    return engine.execute(kind, project_id, payload)


class BackendWorker(Worker):
    """RQ's forking worker; its maintenance also re-queues trainings whose worker was lost."""

    stop_requested = False

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        engine = backend().jobs
        if isinstance(engine, RedisJobs):
            engine.sweep()

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        engine = backend().jobs
        try:
            if isinstance(engine, RedisJobs):
                engine.horse_lost(self.name, job)
        except redis.RedisError as exc:  # the lock then expires and the sweep re-queues the training
            logger.warning("cannot free the training of job %s at once: %s", job.id, exc)

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)


def serve(make_backend: Callable[[Settings], TemporalBackend] = TemporalBackend, burst: bool = False) -> int:
    """Run one worker until it is stopped (SIGTERM / SIGINT); it reconnects when Redis goes away."""
    global _backend
    settings = Settings.from_env()
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d %(name)s] %(message)s",
    )
    if not settings.redis_url:
        logger.error("REDIS_URL is not set: a worker needs the Redis engine (see README)")
        return 2
    # Training is background work: where a worker shares cores with web processes, the web stays responsive.
    os.nice(settings.worker_nice)
    _backend = make_backend(settings)
    engine = _backend.jobs
    assert isinstance(engine, RedisJobs)
    interval = max(1, round(settings.job_lock_ttl_s))
    # worker_ttl: RQ's blocking dequeue returns every `interval` s, so maintenance (the sweep) runs that often.
    while True:
        try:
            problem = engine.check_model_dir("worker")
            if problem:
                logger.error("refusing to train: %s", problem["message"])
                return 3
            worker = BackendWorker(
                [settings.jobs_queue],
                connection=redis.Redis.from_url(settings.redis_url),
                maintenance_interval=interval,
                worker_ttl=interval + 15,
                job_monitoring_interval=min(30, interval),
            )
            worker.work(burst=burst, logging_level=settings.log_level)
        except redis.RedisError as exc:
            logger.error("Redis unreachable (%s): retrying in 1 s", exc)
            time.sleep(1.0)
            continue
        if burst or worker.stop_requested:
            return 0
        logger.warning("the RQ worker stopped (lost Redis?); starting it again in 1 s")
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="run the queued jobs, then exit")
    sys.exit(serve(burst=parser.parse_args().burst))


if __name__ == "__main__":
    sys.modules.setdefault("worker", sys.modules[__name__])  # RQ imports `worker.perform` in the work-horse
    main()
