"""Background training: fast webhooks, one training per project at a time, bursts coalesced, failures kept."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest
import torch
from flask.testing import FlaskClient

from fixtures.app_factory import VIDEO_CONFIG, annotation_event, make_app, make_backend
from fixtures.recording_control import RecordingTimelineModel
from fixtures.servers import wait_until
from utils.service.job_engine import JobEngine
from utils.service.settings import Settings

START_TRAINING = {"action": "START_TRAINING", "project": {"id": 1, "label_config": VIDEO_CONFIG}}


def fit_log(settings) -> list[dict]:
    path = Path(settings.model_dir) / "fit-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture()
def slow_fit(monkeypatch):
    monkeypatch.setattr(RecordingTimelineModel, "fit_seconds", 1.5)


def test_webhook_answers_within_a_second_while_training_runs(settings, slow_fit) -> None:
    app = make_app(settings)
    client = app.test_client()
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    time.sleep(0.3)  # the first training is running now
    assert app.config["BACKEND"].jobs.status()["1"]["state"] == "running"
    started = time.perf_counter()
    response = client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    assert response.status_code == 200
    assert time.perf_counter() - started < 1.0
    app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)


def test_burst_of_ten_events_trains_at_most_twice(settings, slow_fit) -> None:
    app = make_app(settings)
    client = app.test_client()
    for i in range(10):
        client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Ball"))
    state = app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    assert 1 <= len(fit_log(settings)) <= 2
    assert state["trained"] == state["requested"] == 10
    # the last training saw every annotation of the burst
    meta = app.config["BACKEND"].store.control_store("1", "label").load()[1]
    assert sorted(meta["task_ids"]) == list(range(1, 11))


def test_a_burst_spread_over_seconds_trains_once_on_all_of_it_after_a_quiet_period(settings) -> None:
    app = make_app(dataclasses.replace(settings, train_debounce_s=0.6))
    client = app.test_client()
    for i in range(6):  # one every 0.3 s: each within the quiet period of the one before
        client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Ball"))
        time.sleep(0.3)
    state = app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    assert [run["tasks"] for run in fit_log(settings)] == [6]
    assert state["trained"] == state["requested"] == 6


@pytest.mark.parametrize("train_threads", [1, 2])
def test_a_training_runs_on_its_own_thread_count_and_leaves_the_serving_one(settings, train_threads) -> None:
    app = make_app(dataclasses.replace(settings, torch_threads=3, train_threads=train_threads))
    app.test_client().post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    assert [run["threads"] for run in fit_log(settings)] == [train_threads]
    counts: list[int] = []
    later = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert counts == [3]  # threads that start using torch after a training get the serving count


def trained_once_then_start_training(settings: Settings) -> tuple[FlaskClient, JobEngine]:
    """A project trained on one annotation, then sent START_TRAINING: its client and job engine."""
    app = make_app(settings)
    client = app.test_client()
    jobs = app.config["BACKEND"].jobs
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    jobs.wait_idle("1", timeout_s=30)
    client.post("/webhook", json=START_TRAINING)
    return client, jobs


def test_start_training_retrains_from_scratch_and_annotations_fine_tune(settings) -> None:
    client, jobs = trained_once_then_start_training(settings)
    jobs.wait_idle("1", timeout_s=30)
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    jobs.wait_idle("1", timeout_s=30)
    assert [run["warm_start"] for run in fit_log(settings)] == [True, False, True]


def test_a_fine_tuning_that_asks_for_a_full_retrain_is_followed_by_one(settings, monkeypatch) -> None:
    fit = RecordingTimelineModel.fit

    def outgrown(self, tasks, warm_start=True, **options):  # as a time series model that outgrew its last one
        return {**fit(self, tasks, warm_start, **options), "full_retrain_due": warm_start}

    monkeypatch.setattr(RecordingTimelineModel, "fit", outgrown)
    app = make_app(settings)
    app.test_client().post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    state = app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    assert [run["warm_start"] for run in fit_log(settings)] == [True, False]
    assert state["trained"] == state["requested"] == 2


def test_annotations_made_before_a_follow_up_full_retrain_starts_are_fine_tuned_on_first(
    settings, monkeypatch, slow_fit
) -> None:
    fit = RecordingTimelineModel.fit

    def outgrown(self, tasks, warm_start=True, **options):
        return {**fit(self, tasks, warm_start, **options), "full_retrain_due": warm_start and len(tasks) == 1}

    monkeypatch.setattr(RecordingTimelineModel, "fit", outgrown)
    app = make_app(settings)
    client = app.test_client()
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    time.sleep(0.3)  # the first fine-tuning runs and will ask for a full retrain; a new annotation comes
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    runs = fit_log(settings)
    # the new annotation is fine-tuned on at once; the full retrain follows, on both annotations
    assert [(run["warm_start"], run["tasks"]) for run in runs] == [(True, 1), (True, 2), (False, 2)]


def slow_full_retrains(monkeypatch, seconds: float, ask_for_one: bool) -> None:
    """A training from scratch on a single task takes `seconds`, the others no time. With `ask_for_one`, a
    fine-tuning on a single task asks for a full retrain (as a time-series model does when its data outgrew
    its last one)."""
    monkeypatch.setenv("RECORDING_SCRATCH_ONE_TASK_SECONDS", str(seconds))
    monkeypatch.setenv("RECORDING_ONE_TASK_ASKS_FULL_RETRAIN", "1" if ask_for_one else "0")


def test_annotations_made_while_a_follow_up_full_retrain_runs_stop_it(settings, monkeypatch) -> None:
    slow_full_retrains(monkeypatch, 60.0, ask_for_one=True)
    app = make_app(settings)
    client = app.test_client()
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    # the fine-tuning is done; the full retrain it asked for runs
    wait_until(lambda: len(fit_log(settings)) == 1, 30, "the fine-tuning", interval_s=0.05)
    time.sleep(0.5)
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    state = app.config["BACKEND"].jobs.wait_idle("1", timeout_s=30)
    runs = fit_log(settings)
    # the full retrain stopped; the new annotation was fine-tuned on; then the full retrain ran on both
    assert [(run["warm_start"], run.get("tasks"), run.get("stopped", False)) for run in runs] == [
        (True, 1, False),
        (False, None, True),
        (True, 2, False),
        (False, 2, False),
    ]
    assert runs[1]["end"] - runs[1]["start"] < 30  # it did not run its 60 s
    assert state["trained"] == state["requested"]


def test_a_full_retrain_asked_for_with_start_training_is_not_stopped(settings, monkeypatch) -> None:
    slow_full_retrains(monkeypatch, 1.5, ask_for_one=False)
    client, jobs = trained_once_then_start_training(settings)
    wait_until(lambda: jobs.status()["1"]["state"] == "running", 30, "the full retrain", interval_s=0.05)
    time.sleep(0.3)
    client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    jobs.wait_idle("1", timeout_s=30)
    runs = fit_log(settings)
    assert [(run["warm_start"], run.get("tasks"), run.get("stopped", False)) for run in runs] == [
        (True, 1, False),
        (False, 1, False),
        (True, 2, False),
    ]


def test_two_workers_never_train_one_project_at_once(settings, slow_fit) -> None:
    workers = [make_backend(settings), make_backend(settings)]  # two processes' worth of state, one model dir
    for i, backend in enumerate(workers):
        backend.handle_event(
            "ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", i + 1, i + 1, "Ball")
        )
    for backend in workers:
        backend.jobs.wait_idle("1", timeout_s=30)
    runs = sorted(fit_log(settings), key=lambda r: r["start"])
    assert len(runs) >= 1
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier["end"] <= later["start"]


def test_failed_training_is_counted_and_previous_model_keeps_serving(settings, monkeypatch) -> None:
    app = make_app(settings)
    backend = app.config["BACKEND"]
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    backend.jobs.wait_idle("1")
    version = backend.model_version("1", VIDEO_CONFIG)

    def explode(self, tasks, **options):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(RecordingTimelineModel, "fit", explode)
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 2, 2, "Goal"))
    state = backend.jobs.wait_idle("1")
    assert state["failures"] == 1 and state["last"]["status"] == "failed"
    assert "out of memory" in state["last"]["error"]
    assert backend.model_version("1", VIDEO_CONFIG) == version
    assert backend.store.control_store("1", "label").load() is not None
    metrics = app.test_client().get("/metrics").get_json()
    assert metrics["trainings"] == {"run": 2, "failed": 1}


def test_each_training_gives_a_new_model_version(settings) -> None:
    backend = make_backend(settings)
    before = backend.model_version("1", VIDEO_CONFIG)
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    backend.jobs.wait_idle("1")
    first = backend.model_version("1", VIDEO_CONFIG)
    backend.handle_event("START_TRAINING", START_TRAINING)
    backend.jobs.wait_idle("1")
    assert len({before, first, backend.model_version("1", VIDEO_CONFIG)}) == 3


def test_deleted_and_cancelled_annotations_are_not_trained_on(settings) -> None:
    backend = make_backend(settings)
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Ball"))
    skipped = annotation_event("ANNOTATION_CREATED", 2, 2, "Goal")
    skipped["annotation"]["was_cancelled"] = True
    backend.handle_event("ANNOTATION_CREATED", skipped)
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 3, 3, "Goal"))
    backend.handle_event(
        "ANNOTATIONS_DELETED",
        {
            "action": "ANNOTATIONS_DELETED",
            "annotations": [{"id": 3}],
            "project": {"id": 1, "label_config": VIDEO_CONFIG},
        },
    )
    backend.jobs.wait_idle("1")
    meta = backend.store.control_store("1", "label").load()[1]
    assert meta["task_ids"] == [1]


def _train_in_child(environ: dict) -> None:
    backend = make_backend(Settings.from_env(environ))
    backend.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Goal"))
    backend.jobs.wait_idle("1")


def test_model_trained_in_one_process_is_used_by_another(settings, data_root) -> None:
    app = make_app(settings)  # this process serves predictions
    client = app.test_client()
    video = str(data_root / "video/spliced/spliced_train0.mp4")
    payload = {
        "tasks": [{"id": 1, "data": {"video": video}}],
        "project": "1.123",
        "label_config": VIDEO_CONFIG,
    }
    before = client.post("/predict", json=payload).get_json()["results"][0]
    assert before["result"] == []
    child = multiprocessing.get_context("spawn").Process(
        target=_train_in_child,
        args=({"MODEL_DIR": str(settings.model_dir), "CACHE_DIR": str(settings.cache_dir)},),
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    after = client.post("/predict", json=payload).get_json()["results"][0]
    assert after["model_version"] != before["model_version"]
    assert after["result"][0]["value"]["timelinelabels"] == ["Goal"]
