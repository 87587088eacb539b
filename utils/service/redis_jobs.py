"""The Redis + RQ job engine: web processes enqueue RQ jobs and answer at once; RQ workers
(`./run.sh worker`, on any machine that shares MODEL_DIR) run them.

RQ owns the queue, the workers and the registries (`rq info` shows them). What RQ does not know lives here,
in Redis, so it holds across machines:
- a per-project hash with `requested` / `trained` counters and at most one queued training job (`queued`,
  `job_id`): a burst of requests collapses into one more training on the newest data;
- a per-project lock with a TTL, renewed while the training runs: one training of a project at a time. A
  worker that dies (kill -9, OOM, machine lost) stops renewing it; once it expires, the sweep that every
  worker runs with RQ's maintenance enqueues the training again;
- requests that cannot reach Redis are kept on local disk (`DeferredRequests`) and handed over when it is back.
The counter updates are Lua scripts, so each is atomic across processes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import redis
from rq import Queue, Retry, get_current_job
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from utils.service.deferred_requests import DeferredRequests
from utils.service.job_engine import TRAIN, JobHandler, settle
from utils.service.redis_connection import PREFIX, connect
from utils.service.settings import Settings
from utils.service.shared_storage import check_model_dir

logger = logging.getLogger(__name__)

LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
T = TypeVar("T")

# KEYS: project hash, projects set, lock. ARGV: project id, count, job id to use if a job must be queued.
REQUEST = """
redis.call('SADD', KEYS[2], ARGV[1])
local requested = redis.call('HINCRBY', KEYS[1], 'requested', ARGV[2])
if redis.call('HGET', KEYS[1], 'queued') == '1' or redis.call('EXISTS', KEYS[3]) == 1 then
  return {requested, 0}
end
redis.call('HSET', KEYS[1], 'queued', '1', 'job_id', ARGV[3])
return {requested, 1}
"""

# Lua: a training whose worker (or work-horse) died without finishing is one failed run, named in `last`.
# KEYS[1]: project hash; `now`: seconds since the epoch; `how`: why it counts as lost.
RECORD_LOST = """
local function record_lost(now, how)
  local worker = redis.call('HGET', KEYS[1], 'worker')
  if not worker or worker == '' then return end
  local lost = {status='failed', error='worker ' .. worker .. ' was lost mid-training (' .. how .. ')',
                finished_at=tonumber(now), worker=worker}
  redis.call('HSET', KEYS[1], 'worker', '', 'token', '', 'last', cjson.encode(lost))
  redis.call('HINCRBY', KEYS[1], 'runs', 1)
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
end
"""

# KEYS: project hash, lock. ARGV: token, worker, ttl ms, job id, now.
# Returns the requested count to train up to, -1 when another training holds the lock, -2 when nothing is left.
START = (
    RECORD_LOST
    + """
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return -1 end
record_lost(ARGV[5], 'its lock expired')
if redis.call('HGET', KEYS[1], 'job_id') == ARGV[4] then redis.call('HSET', KEYS[1], 'queued', '0') end
local requested = tonumber(redis.call('HGET', KEYS[1], 'requested') or '0')
if tonumber(redis.call('HGET', KEYS[1], 'trained') or '0') >= requested then
  redis.call('DEL', KEYS[2])
  return -2
end
redis.call('HSET', KEYS[1], 'worker', ARGV[2], 'token', ARGV[1], 'started_at', ARGV[5])
return requested
"""
)

# KEYS: project hash, lock. ARGV: worker, now. The worker's work-horse died mid-training (kill -9, OOM): free
# the project at once (RQ's retry of the job then trains without waiting for the lock to expire).
HORSE_LOST = (
    RECORD_LOST
    + """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) == redis.call('HGET', KEYS[1], 'token') then redis.call('DEL', KEYS[2]) end
record_lost(ARGV[2], 'its work-horse died')
return 1
"""
)

# KEYS: project hash, lock. ARGV: token, target, outcome JSON, failed (0/1), job id for a follow-up.
# Returns 1 when requests arrived during the training and a follow-up job must be queued.
FINISH = """
local owned = redis.call('GET', KEYS[2]) == ARGV[1]
if owned then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'worker', '', 'token', '')
end
local trained = tonumber(redis.call('HGET', KEYS[1], 'trained') or '0')
if tonumber(ARGV[2]) > trained then
  trained = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'trained', trained)
end
redis.call('HINCRBY', KEYS[1], 'runs', 1)
redis.call('HINCRBY', KEYS[1], 'failures', ARGV[4])
redis.call('HSET', KEYS[1], 'last', ARGV[3])
local requested = tonumber(redis.call('HGET', KEYS[1], 'requested') or '0')
if requested > trained and redis.call('HGET', KEYS[1], 'queued') ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'queued', '1', 'job_id', ARGV[5])
  return 1
end
return 0
"""

# KEYS: lock. ARGV: token, ttl ms. Extends our lock; takes it back if it expired during a Redis outage.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

# KEYS: project hash, lock. ARGV: job id believed dead ('' if none), new job id, now.
# A training whose lock expired lost its worker: record that, and queue the work again unless a live job has it.
REPAIR = (
    RECORD_LOST
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
record_lost(ARGV[3], 'its lock expired')
local requested = tonumber(redis.call('HGET', KEYS[1], 'requested') or '0')
if tonumber(redis.call('HGET', KEYS[1], 'trained') or '0') >= requested then return 0 end
if redis.call('HGET', KEYS[1], 'queued') == '1' and redis.call('HGET', KEYS[1], 'job_id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'queued', '1', 'job_id', ARGV[2])
return 1
"""
)

# KEYS: projects set. ARGV: key prefix. Every project's hash and whether its lock is held, in one round trip.
STATUS = """
local result = {}
for _, pid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hash = redis.call('HGETALL', ARGV[1] .. ':project:' .. pid)
  result[#result + 1] = {pid, hash, redis.call('EXISTS', ARGV[1] .. ':lock:' .. pid)}
end
return result
"""

# KEYS: queue list, started / finished / failed registries, the queue's workers set, model-dir mismatch hash.
# The queue's sizes, the model-dir problems and every worker's hash, in one round trip.
OVERVIEW = """
local workers = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  workers[#workers + 1] = {key, redis.call('HGETALL', key)}
end
return {redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), redis.call('HGETALL', KEYS[6]), workers}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _fields(flat: list[Any]) -> dict[str, str]:
    """A hash as a Lua script returns it (`[field, value, field, value, ...]`) as a dict of str."""
    return {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


class RedisJobs:
    """The `JobEngine` on Redis + RQ; the same object serves web processes and, in `execute`, RQ jobs."""

    name = "redis"

    def __init__(
        self, settings: Settings, state_root: Path, handlers: Mapping[str, JobHandler], job_target: str
    ):
        self.settings = settings
        self._handlers = dict(handlers)
        self.job_target = job_target
        self.lock_ttl_ms = int(settings.job_lock_ttl_s * 1000)
        self.redis = connect(settings.redis_url)
        self.queue = Queue(settings.jobs_queue, connection=self.redis)
        self.deferred = DeferredRequests(state_root)
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in (
                ("request", REQUEST),
                ("start", START),
                ("finish", FINISH),
                ("renew", RENEW),
                ("horse_lost", HORSE_LOST),
                ("status", STATUS),
                ("overview", OVERVIEW),
                ("repair", REPAIR),
            )
        }
        self._flusher: threading.Thread | None = None
        self._guard = threading.Lock()
        self._redis_down = False

    # --- keys ----------------------------------------------------------------------------------
    def _project_key(self, project_id: str) -> str:
        return f"{PREFIX}:project:{project_id}"

    def _lock_key(self, project_id: str) -> str:
        return f"{PREFIX}:lock:{project_id}"

    @property
    def _projects_key(self) -> str:
        return f"{PREFIX}:projects"

    @property
    def _model_dir_key(self) -> str:
        return f"{PREFIX}:model-dir"

    # --- web side ------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            check_model_dir(self.redis, self._model_dir_key, self.settings.model_dir, "web")
            self.sweep()
        except redis.RedisError as exc:
            logger.warning("Redis at start-up: %s (requests are kept until it answers)", exc)
        if self.deferred.pending():
            self._start_flusher()

    def request(self, project_id: str) -> dict[str, Any]:
        # While Redis is known down, requests go straight to disk: the flusher probes Redis every second.
        if not self._redis_down:
            try:
                return {"state": "queued", "requested": self._request(project_id, 1)}
            except redis.RedisError as exc:
                logger.error(
                    "Redis unreachable (%s): training requests are kept on disk until it is back", exc
                )
                self._redis_down = True
        count = self.deferred.add(project_id)
        self._start_flusher()
        return {"state": "deferred", "requested": None, "deferred": count}

    def _request(self, project_id: str, count: int) -> int:
        job_id = self._new_job_id(TRAIN, project_id)
        requested, must_enqueue = self._scripts["request"](
            keys=[self._project_key(project_id), self._projects_key, self._lock_key(project_id)],
            args=[project_id, count, job_id],
        )
        if must_enqueue:
            self._enqueue(TRAIN, project_id, {}, job_id)
        return int(requested)

    def requested(self, project_id: str) -> int | None:
        try:  # requests deferred while Redis is down are not counted yet: their annotations wait for them
            return int(self.redis.hget(self._project_key(project_id), "requested") or 0)
        except redis.RedisError:
            return None

    def submit(self, kind: str, project_id: str, payload: dict[str, Any], job_id: str | None = None) -> str:
        if kind not in self._handlers:
            raise KeyError(f"no handler for job kind {kind!r}")
        job_id = job_id or self._new_job_id(kind, project_id)
        if not Job.exists(job_id, connection=self.redis):
            self._enqueue(kind, project_id, payload, job_id)
        return job_id

    def _enqueue(self, kind: str, project_id: str, payload: dict[str, Any], job_id: str) -> None:
        # Retry: RQ runs a job again when its work-horse dies (kill -9, OOM); a failing training is not retried.
        self.queue.enqueue(
            self.job_target,
            kind,
            project_id,
            payload,
            job_id=job_id,
            job_timeout=self.settings.job_timeout_s,
            retry=Retry(max=2),
            description=f"{kind} project {project_id}",
        )

    @staticmethod
    def _new_job_id(kind: str, project_id: str) -> str:
        return f"{kind}-{project_id}-{uuid.uuid4().hex[:12]}"

    def _start_flusher(self) -> None:
        with self._guard:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_deferred, name="deferred-requests", daemon=True
                )
                self._flusher.start()

    def _flush_deferred(self) -> None:
        """Hand requests kept during an outage to Redis, trying every second until none are left."""
        while True:
            try:
                handed = self.deferred.hand_over(lambda pid, count: self._request(pid, count))
                self.redis.ping()
            except redis.RedisError:
                time.sleep(1.0)
                continue
            if handed:
                logger.info("handed %d training requests kept during a Redis outage to the queue", handed)
            with self._guard:  # a request deferred after this check starts a new flusher
                if not self.deferred.pending():
                    self._redis_down = False
                    self._flusher = None
                    return

    # --- visibility ----------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        try:
            if self._redis_down:
                raise redis.ConnectionError("down (requests are kept on disk)")
            replies = self._scripts["status"](keys=[self._projects_key], args=[PREFIX])
        except redis.RedisError:
            return {pid: {"state": "deferred", "deferred": n} for pid, n in self.deferred.pending().items()}
        result: dict[str, dict[str, Any]] = {}
        for raw_pid, fields, locked in sorted(replies, key=lambda reply: _text(reply[0])):
            pid, entry = _text(raw_pid), _fields(fields)
            requested, trained = int(entry.get("requested") or 0), int(entry.get("trained") or 0)
            worker = entry.get("worker") or None
            if worker and locked:
                state = "running"
            elif requested > trained:
                state = "queued"
            else:
                state = "idle"
            result[pid] = {
                "state": state,
                "requested": requested,
                "trained": trained,
                "runs": int(entry.get("runs") or 0),
                "failures": int(entry.get("failures") or 0),
                "worker": worker if state == "running" else None,
                "last": json.loads(entry["last"]) if entry.get("last") else None,
            }
        return result

    def overview(self) -> dict[str, Any]:
        """Read in one round trip (it is polled): RQ's queue and registry sizes, its worker hashes."""
        deferred = sum(self.deferred.pending().values())
        registries = {
            "started": StartedJobRegistry(queue=self.queue),
            "finished": FinishedJobRegistry(queue=self.queue),
            "failed": FailedJobRegistry(queue=self.queue),
        }
        try:
            if self._redis_down:
                raise redis.ConnectionError("down (requests are kept on disk)")
            keys = [self.queue.key, *(r.key for r in registries.values())]
            keys += [WORKERS_BY_QUEUE_KEY % self.queue.name, f"{self._model_dir_key}:mismatch"]
            queued, *counts, problems, worker_hashes = self._scripts["overview"](keys=keys)
        except redis.RedisError as exc:
            return {"engine": self.name, "redis": f"unreachable: {exc}", "deferred_requests": deferred}
        workers = []
        for key, fields in sorted(worker_hashes, key=lambda reply: _text(reply[0])):
            info = _fields(fields)
            if info:  # a worker that died keeps its key until its TTL; an expired one has none
                workers.append(
                    {
                        "name": _text(key).rsplit(":", 1)[-1],
                        "host": info.get("hostname"),
                        "pid": int(info["pid"]) if info.get("pid") else None,
                        "state": info.get("state"),
                        "last_heartbeat": info.get("last_heartbeat"),
                    }
                )
        mismatched = [json.loads(v) for v in _fields(problems).values()]
        return {
            "engine": self.name,
            "redis": "ok",
            "queue": {
                "name": self.queue.name,
                "queued": queued,
                **dict(zip(registries, counts, strict=True)),
            },
            "workers": workers,
            "deferred_requests": deferred,
            "model_dir": {"shared": not mismatched, "problems": mismatched},
        }

    def wait_idle(self, project_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.status().get(project_id)
            if state and state["state"] == "idle" and state["trained"] >= state["requested"]:
                return state
            time.sleep(0.1)
        raise TimeoutError(f"training of project {project_id} still busy after {timeout_s}s")

    # --- worker side ---------------------------------------------------------------------------
    def check_model_dir(self, role: str) -> dict[str, Any] | None:
        """Whether this process's MODEL_DIR is the shared one (None) or a description of the mismatch."""
        return check_model_dir(self.redis, self._model_dir_key, self.settings.model_dir, role)

    def execute(self, kind: str, project_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The body of every RQ job: plain jobs call their handler; trainings are coordinated per project."""
        if kind != TRAIN:
            return self._handlers[kind](project_id, payload)
        job = get_current_job()
        job_id = job.id if job is not None else ""
        token = uuid.uuid4().hex
        worker = os.environ.get("RQ_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"
        settle(lambda: self.requested(project_id), self.settings.train_debounce_s)
        target = self._acquire(project_id, token, worker, job_id)
        if target < 0:
            return {"status": "skipped", "reason": "every request is already trained"}
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(project_id, token, stop), name="training-lock", daemon=True
        )
        renewer.start()
        started = time.monotonic()
        error: Exception | None = None
        try:
            outcome = {"status": "finished", "error": None, **self._handlers[TRAIN](project_id, {})}
            logger.info("project %s trained in %.1fs on %s", project_id, time.monotonic() - started, worker)
        except Exception as exc:  # noqa: BLE001 - recorded; the old model keeps serving
            logger.error("training of project %s failed: %s", project_id, exc, exc_info=True)
            outcome, error = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, exc
        finally:
            stop.set()
            renewer.join()
        outcome.update(
            finished_at=time.time(), duration_s=round(time.monotonic() - started, 3), worker=worker
        )
        next_job = self._new_job_id(TRAIN, project_id)
        follow_up = self._patiently(
            lambda: self._scripts["finish"](
                keys=[self._project_key(project_id), self._lock_key(project_id)],
                args=[token, target, json.dumps(outcome), int(error is not None), next_job],
            )
        )
        if follow_up:
            self._enqueue(TRAIN, project_id, {}, next_job)
        if error is not None:
            if job is not None:
                job.retries_left = 0  # it would fail the same way: into RQ's failed registry at once
            raise error
        return outcome

    def horse_lost(self, worker: str, job: Job) -> bool:
        """Called by `worker`'s parent when its work-horse died running `job`: a training it held is recorded
        as lost and its project freed at once, so RQ's retry of the job trains now and /health never shows a
        dead horse as running. Returns whether a training was freed."""
        kind, project_id = (job.args or (None, None))[:2]
        if kind != TRAIN:
            return False
        keys = [self._project_key(project_id), self._lock_key(project_id)]
        freed = bool(self._scripts["horse_lost"](keys=keys, args=[worker, time.time()]))
        if freed:
            logger.warning(
                "project %s: the work-horse of %s died mid-training; it runs again", project_id, worker
            )
        return freed

    def _acquire(self, project_id: str, token: str, worker: str, job_id: str) -> int:
        """Take the project's lock, waiting while another training holds it; returns the target count."""
        while True:
            target = int(
                self._scripts["start"](
                    keys=[self._project_key(project_id), self._lock_key(project_id)],
                    args=[token, worker, self.lock_ttl_ms, job_id, time.time()],
                )
            )
            if target != -1:
                return target
            time.sleep(min(1.0, self.lock_ttl_ms / 4000))

    def _renew(self, project_id: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.lock_ttl_ms / 3000):
            try:
                if not self._scripts["renew"](
                    keys=[self._lock_key(project_id)], args=[token, self.lock_ttl_ms]
                ):
                    logger.error("project %s: the training lock was taken over by another worker", project_id)
            except redis.RedisError as exc:
                logger.warning("project %s: cannot renew the training lock: %s", project_id, exc)

    def _patiently(self, call: Callable[[], T], timeout_s: float = 120.0) -> T:
        """Retry `call` through a Redis outage, so a finished training is recorded once Redis is back."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def sweep(self) -> int:
        """Queue again the trainings whose worker died (lock expired) or whose job was lost; returns how many.
        Every worker runs it with RQ's maintenance tasks, and every web process when it starts."""
        requeued = 0
        for pid in sorted(_text(p) for p in self.redis.smembers(self._projects_key)):
            fields = {_text(k): _text(v) for k, v in self.redis.hgetall(self._project_key(pid)).items()}
            requested, trained = int(fields.get("requested") or 0), int(fields.get("trained") or 0)
            if not fields.get("worker") and requested <= trained:
                continue
            if self.redis.exists(self._lock_key(pid)):
                continue
            job_id = fields.get("job_id", "")
            dead = ""
            if fields.get("queued") == "1" and not self._job_alive(job_id):
                dead = job_id
            new_id = self._new_job_id(TRAIN, pid)
            repaired = self._scripts["repair"](
                keys=[self._project_key(pid), self._lock_key(pid)], args=[dead, new_id, time.time()]
            )
            if repaired:
                logger.warning("project %s: training queued again (its worker or job was lost)", pid)
                self._enqueue(TRAIN, pid, {}, new_id)
                requeued += 1
        return requeued

    def _job_alive(self, job_id: str) -> bool:
        if not job_id:
            return False
        try:
            return Job.fetch(job_id, connection=self.redis).get_status() in LIVE_JOB_STATES
        except Exception:  # noqa: BLE001 - NoSuchJobError or an unreadable job: not alive
            return False
