"""The Redis + RQ engine with a real Redis server, real gunicorn and real RQ workers (tiny test control
models, so each test takes seconds): bursts coalesce per project, a killed worker's training completes
elsewhere, a Redis restart loses no request, a worker on another MODEL_DIR is reported."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from fixtures.app_factory import annotation_event, make_app
from fixtures.data import TEST_DATA
from fixtures.job_cluster import Cluster, kill_tree
from fixtures.redis_server import RedisServer
from fixtures.servers import Server, kill_child_when, wait_until
from fixtures.timeline import spliced_checkpoint, spliced_labels, spliced_tasks, timeline_config
from utils.service.model_store import ModelStore
from utils.service.settings import Settings

pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    redis_server = RedisServer(tmp_path / "redis").start()
    deployment = Cluster(tmp_path, redis_server)
    try:
        yield deployment
    finally:
        deployment.stop()
        redis_server.stop()


def health(server: Server) -> dict[str, Any]:
    return requests.get(f"{server.url}/health", timeout=5).json()


def wait_for(cluster: Cluster, probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    try:
        return wait_until(probe, timeout_s, what, interval_s=0.2)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from exc


def trained_up_to_date(server: Server, projects: list[str]) -> dict[str, Any] | None:
    training = health(server)["training"]
    done = all(
        p in training
        and training[p]["state"] == "idle"
        and training[p]["requested"] > 0
        and training[p]["trained"] == training[p]["requested"]
        for p in projects
    )
    return training if done else None


def fits(model_dir: Path) -> list[dict[str, Any]]:
    path = model_dir / "fit-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def trained_task_ids(model_dir: Path, project: str) -> list[int]:
    return sorted(ModelStore(model_dir).control_store(project, "label").load_meta()["task_ids"])


def post_event(server: Server, event: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/webhook", json=event, timeout=10)


def test_burst_of_thirty_webhooks_on_two_web_and_two_rq_workers(cluster: Cluster) -> None:
    web = cluster.web(workers=2, RECORDING_FIT_SECONDS="0.5")
    cluster.worker(RECORDING_FIT_SECONDS="0.5")
    cluster.worker(RECORDING_FIT_SECONDS="0.5")
    wait_for(cluster, lambda: len(health(web)["jobs"]["workers"]) == 2, 60, "two RQ workers")
    events = [
        annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Ball", project_id=1 + i % 3) for i in range(30)
    ]
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda event: post_event(web, event), events))
    assert [r.status_code for r in responses] == [200] * 30
    assert all(r.json()["status"] == "queued" for r in responses)

    training = wait_for(
        cluster, lambda: trained_up_to_date(web, ["1", "2", "3"]), 90, "three projects trained"
    )
    assert {p: training[p]["requested"] for p in "123"} == {"1": 10, "2": 10, "3": 10}
    by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in fits(cluster.model_dir):
        by_project[run["project"]].append(run)
    for project in "123":
        runs = sorted(by_project[project], key=lambda r: r["start"])
        assert 1 <= len(runs) < 10  # the burst coalesced
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert earlier["end"] <= later["start"], f"two trainings of project {project} overlapped"
        expected = [i + 1 for i in range(30) if 1 + i % 3 == int(project)]
        assert trained_task_ids(cluster.model_dir, project) == expected  # its newest data
    assert health(web)["jobs"]["queue"]["finished"] >= 3  # RQ's own registry shows the jobs


def test_a_follow_up_full_retrain_on_an_rq_worker_stops_for_a_new_annotation(cluster: Cluster) -> None:
    # a fine-tuning on one task asks for a full retrain, which takes 60 s on that one task
    slow = {"RECORDING_SCRATCH_ONE_TASK_SECONDS": "60", "RECORDING_ONE_TASK_ASKS_FULL_RETRAIN": "1"}
    web = cluster.web(workers=1, **slow)
    cluster.worker(**slow)
    wait_for(cluster, lambda: len(health(web)["jobs"]["workers"]) == 1, 60, "the RQ worker")
    assert post_event(web, annotation_event("ANNOTATION_CREATED", 1, 1, "Ball")).status_code == 200
    wait_for(cluster, lambda: len(fits(cluster.model_dir)) == 1, 60, "the fine-tuning on one task")
    wait_for(cluster, lambda: health(web)["training"]["1"]["state"] == "running", 30, "the full retrain")
    time.sleep(1.5)  # the quiet period is over: the full retrain runs
    assert post_event(web, annotation_event("ANNOTATION_CREATED", 2, 2, "Goal")).status_code == 200
    wait_for(
        cluster, lambda: trained_up_to_date(web, ["1"]), 45, "the stop, the fine-tuning, the full retrain"
    )
    runs = sorted(fits(cluster.model_dir), key=lambda r: r["start"])
    assert [(r["warm_start"], r.get("tasks"), r.get("stopped", False)) for r in runs] == [
        (True, 1, False),
        (False, None, True),
        (True, 2, False),
        (False, 2, False),
    ]
    assert trained_task_ids(cluster.model_dir, "1") == [1, 2]


def test_a_video_opened_before_the_first_model_is_encoded_by_an_rq_worker(cluster: Cluster) -> None:
    checkpoint = spliced_checkpoint()
    real = {"MEDIA_ROOTS": str(TEST_DATA), "MODEL_ROOTS": str(checkpoint.parent)}
    web = cluster.web(workers=1, app="_wsgi:create_app()", **real)
    worker = cluster.worker(real_models=True, **real)
    wait_for(cluster, lambda: len(health(web)["jobs"]["workers"]) == 1, 60, "the RQ worker")
    config = timeline_config(spliced_labels(), model_trainable="true", model_path=str(checkpoint))
    task = {"id": 1, "data": spliced_tasks()[0]["data"]}
    body = {"tasks": [task], "project": "1.1", "label_config": config}
    answer = requests.post(f"{web.url}/predict", json=body, timeout=30)
    assert answer.status_code == 200 and answer.json()["results"][0]["result"] == []  # no model yet
    encoded = "encoded spliced_train0.mp4"
    wait_for(cluster, lambda: encoded in worker.log_tail(200), 120, "the worker encoding the opened video")
    assert encoded not in web.log_tail(200)  # the web process only queued the job
    assert list((cluster.root / "cache" / "features").glob("*.rows"))  # where the first training reads it


def test_training_of_a_worker_killed_with_sigkill_completes_on_another(cluster: Cluster) -> None:
    web = cluster.web(workers=1)
    workers = [cluster.worker(RECORDING_FIT_SECONDS="4"), cluster.worker(RECORDING_FIT_SECONDS="4")]
    wait_for(cluster, lambda: len(health(web)["jobs"]["workers"]) == 2, 60, "two RQ workers")
    assert post_event(web, annotation_event("ANNOTATION_CREATED", 1, 1, "Goal")).status_code == 200

    running = wait_for(
        cluster, lambda: health(web)["training"].get("1", {}).get("worker"), 30, "the training to start"
    )
    victim_pid = next(w["pid"] for w in health(web)["jobs"]["workers"] if w["name"] == running)
    assert victim_pid in {w.process.pid for w in workers}
    killed = kill_tree(victim_pid)  # the worker and its work-horse, as when a machine is lost

    training = wait_for(
        cluster, lambda: trained_up_to_date(web, ["1"]), 60, "the training to complete elsewhere"
    )
    state = training["1"]
    assert state["last"]["status"] == "finished" and state["last"]["worker"] != running
    assert state["failures"] >= 1  # the lost run is reported
    finished = [run for run in fits(cluster.model_dir) if run["pid"] not in killed]
    assert finished and trained_task_ids(cluster.model_dir, "1") == [1]


def test_training_whose_work_horse_is_killed_runs_again_at_once_on_the_same_worker(cluster: Cluster) -> None:
    # A lock TTL far longer than the test: the training may only run again because the worker freed it.
    slow_expiry = {"RECORDING_FIT_SECONDS": "3", "JOB_LOCK_TTL": "120"}
    web = cluster.web(workers=1, **slow_expiry)
    rq_worker = cluster.worker(**slow_expiry)
    wait_for(cluster, lambda: len(health(web)["jobs"]["workers"]) == 1, 60, "the RQ worker")
    assert post_event(web, annotation_event("ANNOTATION_CREATED", 1, 1, "Goal")).status_code == 200
    wait_for(cluster, lambda: health(web)["training"].get("1", {}).get("worker"), 30, "the training to start")
    horses = psutil.Process(rq_worker.process.pid).children()
    assert len(horses) == 1
    horse = horses[0].pid
    os.kill(horse, signal.SIGKILL)  # the work-horse only (OOM killer, kill -9); its parent lives on

    def not_running_on_the_dead_horse() -> dict[str, Any] | None:
        state = health(web)["training"]["1"]
        return state if state["failures"] == 1 else None

    state = wait_for(cluster, not_running_on_the_dead_horse, 20, "the lost run to be reported")
    assert "work-horse died" in state["last"]["error"]
    assert state["trained"] == 0 and state["requested"] == 1
    training = wait_for(cluster, lambda: trained_up_to_date(web, ["1"]), 30, "the training to run again")
    assert rq_worker.process.poll() is None
    assert training["1"]["last"]["status"] == "finished"
    assert (training["1"]["runs"], training["1"]["failures"]) == (2, 1)
    finished = [run for run in fits(cluster.model_dir) if run["pid"] != horse]
    assert len(finished) == 1 and trained_task_ids(cluster.model_dir, "1") == [1]
    assert health(web)["jobs"]["queue"]["started"] == 0


def test_redis_stopped_and_restarted_mid_run_loses_no_request(cluster: Cluster) -> None:
    web = cluster.web(workers=2, RECORDING_FIT_SECONDS="1")
    cluster.worker(RECORDING_FIT_SECONDS="1")
    for i in range(5):
        assert (
            post_event(web, annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Ball")).status_code == 200
        )

    cluster.redis.stop()
    for i in range(5, 10):
        started = time.perf_counter()
        response = post_event(web, annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Goal"))
        assert response.status_code == 200 and response.json()["status"] == "queued"
        assert time.perf_counter() - started < 1.0
    assert requests.get(f"{web.url}/health", timeout=5).status_code == 200
    cluster.redis.start()

    training = wait_for(cluster, lambda: trained_up_to_date(web, ["1"]), 120, "every request trained")
    assert training["1"]["requested"] == 10
    assert trained_task_ids(cluster.model_dir, "1") == list(range(1, 11))


def test_worker_on_another_model_dir_is_refused_and_reported(cluster: Cluster, settings: Settings) -> None:
    web = make_app(dataclasses.replace(settings, model_dir=cluster.model_dir, redis_url=cluster.redis.url))
    stray = cluster.worker(MODEL_DIR=str(cluster.root / "not-shared"))
    assert stray.process.wait(60) == 3
    problems = web.test_client().get("/health").get_json()["jobs"]["model_dir"]
    assert problems["shared"] is False
    assert "not-shared" in problems["problems"][0]["model_dir"]


def _train_then_hang(environ: dict[str, str]) -> None:
    from fixtures.app_factory import make_backend

    os.environ.update(environ)  # the test control model reads its delay from the environment
    backend = make_backend(Settings.from_env(environ))
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Goal"))
    time.sleep(120)


def test_embedded_engine_resumes_a_training_killed_mid_run_at_start_up(settings: Settings) -> None:
    environ = {
        "MODEL_DIR": str(settings.model_dir),
        "CACHE_DIR": str(settings.cache_dir),
        "RECORDING_FIT_SECONDS": "60",
    }
    state_file = settings.model_dir / "projects" / "1" / "jobs.json"
    kill_child_when(
        _train_then_hang,
        environ,
        state_file,
        lambda state: state["state"] == "running",
        "the child's training to start",
    )
    assert json.loads(state_file.read_text())["trained"] == 0

    app = make_app(settings)  # a restarted service
    state = app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    assert state["trained"] == state["requested"] == 1
    assert trained_task_ids(settings.model_dir, "1") == [1]


def test_plain_jobs_go_through_the_same_interface_once_per_job_id(tmp_path: Path, settings: Settings) -> None:
    from rq import Queue

    from utils.service.jobs import TrainingJobs
    from utils.service.redis_jobs import RedisJobs

    done: list[tuple[str, dict]] = []
    handlers = {"predict": lambda pid, payload: done.append((pid, payload)) or {}}
    embedded = TrainingJobs(tmp_path / "embedded", handlers)
    embedded.submit("predict", "1", {"tasks": [7]}, job_id="predict-1-v3")
    embedded.submit("predict", "1", {"tasks": [7]}, job_id="predict-1-v3")
    wait_until(lambda: done, 10, "the embedded job", interval_s=0.05)
    time.sleep(0.2)
    assert done == [("1", {"tasks": [7]})]

    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        engine = RedisJobs(
            dataclasses.replace(settings, redis_url=redis_server.url),
            tmp_path / "r",
            handlers,
            "worker.perform",
        )
        engine.submit("predict", "1", {"tasks": [7]}, job_id="predict-1-v3")
        engine.submit("predict", "1", {"tasks": [7]}, job_id="predict-1-v3")
        queue = Queue(settings.jobs_queue, connection=engine.redis)
        assert queue.job_ids == ["predict-1-v3"]
        assert queue.fetch_job("predict-1-v3").args == ("predict", "1", {"tasks": [7]})
        assert engine.execute("predict", "2", {"tasks": [8]}) == {}  # what a worker runs for it
        assert done[-1] == ("2", {"tasks": [8]})
    finally:
        redis_server.stop()


def test_both_engines_count_training_requests_for_a_running_training_to_compare(
    tmp_path: Path, settings: Settings
) -> None:
    from utils.service.jobs import TrainingJobs
    from utils.service.redis_jobs import RedisJobs

    handlers = {"train": lambda pid, payload: {}}
    embedded = TrainingJobs(tmp_path / "embedded", {"train": lambda pid, payload: time.sleep(0.5) or {}})
    assert embedded.requested("1") == 0
    embedded.request("1")
    embedded.request("1")
    assert embedded.requested("1") == 2

    redis_server = RedisServer(tmp_path / "redis").start()
    engine = RedisJobs(
        dataclasses.replace(settings, redis_url=redis_server.url), tmp_path / "r", handlers, "worker.perform"
    )
    try:
        assert engine.requested("1") == 0
        engine.request("1")
        engine.request("1")
        engine.request("2")
        assert (engine.requested("1"), engine.requested("2")) == (2, 1)
    finally:
        redis_server.stop()
    assert engine.requested("1") is None  # cannot tell: a running training goes on
