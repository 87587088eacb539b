"""The labeling loop without Label Studio: which events queue prediction jobs, long media answered at once and
predicted in the background, stale versions cancelled, failed pushes retried and reported. Pushing into a real
Label Studio is checked end to end in tests/e2e/test_labeling_loop.py."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from fixtures.app_factory import VIDEO_CONFIG, annotation_event, make_backend
from fixtures.recording_control import RecordingTimelineModel
from fixtures.timeline import OPOSSUM, session_dir
from fixtures.yolo_checkpoint import build_checkpoint
from model import TemporalBackend
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.predictions import PredictionPusher, PushError, TaskSummary, tasks_to_repredict
from utils.service.errors import BadRequestError
from utils.service.prediction_jobs import BY_JOB, PredictionJob
from utils.service.settings import Settings
from utils.video.encoder import YoloFrameEncoder
from utils.video.feature_cache import FeatureCache
from utils.video.features import FeatureExtractor
from utils.video.throughput import EncodeRate


@pytest.fixture()
def loop_settings(settings: Settings, tmp_path: Path) -> Settings:
    media = tmp_path / "media"
    media.mkdir()
    for task_id in (1, 2, 3):
        (media / f"v{task_id}.mp4").write_bytes(b"not decoded by the recording model")
    return dataclasses.replace(settings, media_roots=(media,), predict_budget_s=5.0, push_backoff_s=0.01)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: every call to it fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def task(task_id: int, media: Path) -> dict:
    return {"id": task_id, "data": {"video": str(media / f"v{task_id}.mp4")}}


def tasks_created(media: Path, *task_ids: int) -> dict:
    return {
        "action": "TASKS_CREATED",
        "tasks": [task(task_id, media) for task_id in task_ids],
        "project": {"id": 1, "label_config": VIDEO_CONFIG},
    }


def trained_backend(settings: Settings):
    backend = make_backend(settings)
    event = annotation_event("ANNOTATION_CREATED", 1, 1, "Goal")
    event["task"]["data"]["video"] = str(settings.media_roots[0] / "v1.mp4")
    backend.handle_event("ANNOTATION_CREATED", event)
    backend.jobs.wait_idle("1")
    return backend


def test_new_tasks_before_any_training_queue_no_prediction(loop_settings: Settings) -> None:
    backend = make_backend(loop_settings)
    answer = backend.handle_event("TASKS_CREATED", tasks_created(loop_settings.media_roots[0], 2, 3))
    assert answer["status"] == "ignored" and answer["reason"] == "no trained model yet"
    assert backend.health()["predictions"] == {}


def test_new_tasks_without_label_studio_access_queue_no_prediction(loop_settings: Settings) -> None:
    backend = trained_backend(loop_settings)
    answer = backend.handle_event("TASKS_CREATED", tasks_created(loop_settings.media_roots[0], 2, 3))
    assert answer["status"] == "ignored" and answer["reason"] == "no Label Studio API access"


def test_tasks_created_without_tasks_is_a_bad_request(loop_settings: Settings) -> None:
    with pytest.raises(BadRequestError, match="tasks"):
        make_backend(loop_settings).handle_event(
            "TASKS_CREATED", {"project": {"id": 1, "label_config": VIDEO_CONFIG}}
        )


def test_long_media_is_answered_at_once_then_predicted_in_the_background(
    loop_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = trained_backend(loop_settings)
    media = loop_settings.media_roots[0]
    monkeypatch.setattr(RecordingTimelineModel, "predict_estimate_s", 1000.0)  # far over the 5 s budget

    first = backend.predict([task(2, media), task(3, media)], 1, VIDEO_CONFIG)["results"]

    assert first == [[], []]  # nothing Label Studio would store: the job's prediction is the only one
    backend.predictions.wait_idle(timeout_s=30)
    progress = backend.health()["predictions"]["1"]
    assert (progress["done"], progress["queued"], progress["running"], progress["failed"]) == (2, 0, 0, 0)
    again = backend.predict([task(2, media)], 1, VIDEO_CONFIG)["results"]
    version = backend.model_version("1", VIDEO_CONFIG)
    assert again[0]["model_version"] == version and again[0]["result"]  # the job's cached prediction


def test_short_media_is_predicted_inline(loop_settings: Settings) -> None:
    backend = trained_backend(loop_settings)
    results = backend.predict([task(2, loop_settings.media_roots[0])], 1, VIDEO_CONFIG)["results"]
    assert results[0]["result"] and backend.health()["predictions"] == {}


def with_push_access(settings: Settings) -> Settings:
    """Pushing on, towards a Label Studio that never answers: /predict and jobs decide who produces."""
    return dataclasses.replace(settings, label_studio_url=closed_port_url(), label_studio_api_key="0" * 40)


def backend_with_a_queued_job_for_task_2(settings: Settings) -> tuple[TemporalBackend, PredictionJob]:
    """A trained project with pushing on, and task 2's job claimed as submit() does, before the engine runs it."""
    trained_backend(settings)
    backend = make_backend(with_push_access(settings))
    job = PredictionJob("1", backend.model_version("1", VIDEO_CONFIG), 2, task(2, settings.media_roots[0]))
    assert backend.predictions._claim(job)
    return backend, job


def test_a_task_whose_queued_job_has_not_started_is_answered_and_the_job_leaves_it(
    loop_settings: Settings,
) -> None:
    backend, queued = backend_with_a_queued_job_for_task_2(loop_settings)
    version = queued.version

    results = backend.predict([task(2, loop_settings.media_roots[0])], 1, VIDEO_CONFIG)["results"]
    backend.predictions.book.count("1", queued=1)
    backend.predictions.handle("1", queued.payload())  # the queued job runs after the answer

    assert results[0]["result"] and results[0]["model_version"] == version
    progress = backend.health()["predictions"]["1"]
    assert (progress["answered"], progress["pushed"], progress["failed"]) == (1, 0, 0)  # no second one


def test_a_task_whose_job_is_predicting_it_is_answered_with_none_once_the_job_ends(
    loop_settings: Settings,
) -> None:
    backend, running = backend_with_a_queued_job_for_task_2(loop_settings)
    assert backend.predictions.produce(running, BY_JOB) == BY_JOB  # the job started predicting it
    release = threading.Timer(0.5, lambda: backend.predictions._claim_path(running).unlink())
    release.start()

    started = time.monotonic()
    results = backend.predict([task(2, loop_settings.media_roots[0])], 1, VIDEO_CONFIG)["results"]

    assert results == [[]]  # Label Studio stores nothing: the job's push is the only prediction
    assert 0.4 < time.monotonic() - started < loop_settings.predict_budget_s  # it waited for the job


def test_a_job_of_an_older_model_version_is_cancelled(loop_settings: Settings) -> None:
    backend = trained_backend(loop_settings)
    stale = PredictionJob("1", "v0.stale", 2, task(2, loop_settings.media_roots[0]))

    backend.predictions.submit([stale])
    backend.predictions.wait_idle(timeout_s=30)

    progress = backend.health()["predictions"]["1"]
    assert (progress["cancelled"], progress["done"], progress["pushed"]) == (1, 0, 0)
    assert (progress["queued"], progress["running"]) == (0, 0)


def test_repredicting_takes_unlabelled_tasks_first_and_stops_at_the_bound() -> None:
    tasks = [
        TaskSummary(1, {}, labelled=True, versions=frozenset()),
        TaskSummary(2, {}, labelled=False, versions=frozenset({"v1"})),
        TaskSummary(3, {}, labelled=False, versions=frozenset({"v2"})),  # already has the new version
        TaskSummary(4, {}, labelled=True, versions=frozenset({"v1"})),
        TaskSummary(5, {}, labelled=False, versions=frozenset()),
    ]
    assert [t.id for t in tasks_to_repredict(tasks, "v2", limit=10)] == [2, 5, 1, 4]
    assert [t.id for t in tasks_to_repredict(tasks, "v2", limit=3)] == [2, 5, 1]


def test_unreachable_label_studio_push_is_retried_with_backoff_then_fails_with_the_reason() -> None:
    delays: list[float] = []
    credentials = LabelStudioCredentials(closed_port_url(), "0" * 40)
    pusher = PredictionPusher(credentials, attempts=3, backoff_s=0.5, sleep=delays.append)

    with pytest.raises(PushError, match=r"task 7: .*ConnectError.*attempt 3 of 3"):
        pusher.push(7, [], 0.0, "v1")

    assert delays == [0.5, 1.0]


def test_failed_pushes_show_in_health_with_their_reason(loop_settings: Settings) -> None:
    trained_backend(loop_settings)
    with_access = dataclasses.replace(
        loop_settings, label_studio_url=closed_port_url(), label_studio_api_key="0" * 40, push_attempts=2
    )
    backend = make_backend(with_access)  # another process of the same service, with API access

    answer = backend.handle_event("TASKS_CREATED", tasks_created(with_access.media_roots[0], 2))
    backend.predictions.wait_idle(timeout_s=30)

    assert answer == {"status": "queued", "action": "TASKS_CREATED", "project": "1", "predictions": 1}
    progress = backend.health()["predictions"]["1"]
    assert (progress["failed"], progress["done"], progress["pushed"]) == (1, 0, 0)
    [failure] = progress["failed_pushes"]
    assert failure["task"] == 2 and "attempt 2 of 2" in failure["reason"], failure


def test_encoding_reports_frames_done_of_total_and_measures_the_rate(tmp_path: Path) -> None:
    checkpoint = build_checkpoint(session_dir() / "roots" / "synthetic-cls.pt", names=["x", "y", "z"])
    extractor = FeatureExtractor(YoloFrameEncoder(checkpoint, threads=1), FeatureCache(tmp_path, 1 << 30))
    reports: list[tuple[int, int]] = []

    assert not extractor.is_cached(OPOSSUM, step=2)
    extractor.features(OPOSSUM, step=2, progress=lambda done, total: reports.append((done, total)))

    assert reports[-1] == (35, 35) and all(total == 35 for _, total in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert extractor.is_cached(OPOSSUM, step=2)
    rate = EncodeRate(initial_fps=100.0)
    rate.record(frames=1000, seconds=2.0)
    assert 100.0 < rate.fps < 500.0 and rate.seconds_for(int(rate.fps)) == pytest.approx(1.0)


def test_prediction_jobs_run_on_rq_workers_with_the_redis_engine(
    loop_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker  # the RQ worker entry point (imports RQ)
    from fixtures.redis_server import RedisServer

    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        settings = dataclasses.replace(loop_settings, redis_url=redis_server.url)
        for name, value in {
            "REDIS_URL": redis_server.url,
            "MODEL_DIR": str(settings.model_dir),
            "CACHE_DIR": str(settings.cache_dir),
            "MEDIA_ROOTS": str(settings.media_roots[0]),
        }.items():
            monkeypatch.setenv(name, value)
        web = make_backend(settings)
        web.handle_event("ANNOTATION_CREATED", annotation_event("ANNOTATION_CREATED", 1, 1, "Goal"))
        assert worker.serve(make_backend=make_backend, burst=True) == 0  # the training, in an RQ work-horse
        version = web.model_version("1", VIDEO_CONFIG)
        assert not version.startswith("v0.")  # a trained version serves
        current = PredictionJob("1", version, 2, task(2, settings.media_roots[0]))
        stale = PredictionJob("1", "v0.stale", 3, task(3, settings.media_roots[0]))

        assert web.predictions.submit([current, stale, current]) == 2
        assert web.predictions.is_claimed(current)
        assert worker.serve(make_backend=make_backend, burst=True) == 0

        progress = web.health()["predictions"]["1"]
        assert (progress["done"], progress["cancelled"], progress["queued"], progress["running"]) == (
            1,
            1,
            0,
            0,
        )
        assert not web.predictions.is_claimed(current)
    finally:
        redis_server.stop()


def _queue_predictions_then_hang(environ: dict[str, str]) -> None:
    from fixtures.app_factory import make_backend as make_child_backend

    os.environ.update(environ)  # the test control model reads its delay from the environment
    settings = Settings.from_env(environ)
    backend = make_child_backend(settings)
    media = settings.media_roots[0]
    event = annotation_event("ANNOTATION_CREATED", 1, 1, "Goal")
    event["task"]["data"]["video"] = str(media / "v1.mp4")
    backend.handle_event("ANNOTATION_CREATED", event)
    backend.jobs.wait_idle("1", timeout_s=60)
    version = backend.model_version("1", VIDEO_CONFIG)
    backend.predictions.submit([PredictionJob("1", version, i, task(i, media)) for i in (1, 2, 3)])
    time.sleep(120)


def test_embedded_engine_resumes_prediction_jobs_of_a_killed_process_at_start_up(
    loop_settings: Settings,
) -> None:
    from fixtures.app_factory import make_app
    from fixtures.servers import kill_child_when

    environ = {
        "MODEL_DIR": str(loop_settings.model_dir),
        "CACHE_DIR": str(loop_settings.cache_dir),
        "MEDIA_ROOTS": str(loop_settings.media_roots[0]),
        "RECORDING_PREDICT_SECONDS": "60",
    }
    kill_child_when(
        _queue_predictions_then_hang,
        environ,
        loop_settings.model_dir / "projects" / "1" / "predictions.json",
        lambda book: book["running"] == 1,
        "the child's first prediction job to start",
    )

    backend = make_app(loop_settings).config["BACKEND"]  # a restarted service
    backend.predictions.wait_idle(timeout_s=30)

    progress = backend.health()["predictions"]["1"]
    assert (progress["done"], progress["queued"], progress["running"], progress["failed"]) == (3, 0, 0, 0)
    predicted = loop_settings.model_dir / "projects" / "1" / "task-predictions"
    assert sorted(p.name for p in predicted.iterdir()) == ["1.json", "2.json", "3.json"]


class InMemoryLabelStudio:
    """Stands in for Label Studio's task and prediction API in `PredictionPusher`'s place (the e2e suite pushes
    into a real one): it lists tasks with the versions pushed so far and records the order of pushes."""

    def __init__(self, task_ids: list[int], media: Path):
        self.media = media
        self.versions: dict[int, set[str]] = {task_id: set() for task_id in task_ids}
        self.pushed: list[int] = []
        self.on_first_push = lambda: None

    def project_tasks(self, project_id: str) -> list[TaskSummary]:
        return [
            TaskSummary(task_id, task(task_id, self.media)["data"], False, frozenset(versions))
            for task_id, versions in self.versions.items()
        ]

    def push(self, task_id: int, result: list, score: float, model_version: str) -> bool:
        if not self.pushed:
            self.on_first_push()
        self.pushed.append(task_id)
        self.versions.setdefault(task_id, set()).add(model_version)
        return True


def test_new_tasks_wait_for_one_sweep_batch_not_for_the_whole_repredicted_project(
    loop_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model import SWEEP_BATCH

    trained_backend(loop_settings)
    backend = make_backend(with_push_access(loop_settings))
    media = loop_settings.media_roots[0]
    old_tasks = list(range(100, 100 + 2 * SWEEP_BATCH + 10))
    label_studio = InMemoryLabelStudio(old_tasks, media)
    monkeypatch.setattr(backend, "_pusher", lambda project_id: label_studio)
    version = backend.model_version("1", VIDEO_CONFIG)
    new_tasks = [PredictionJob("1", version, task_id, task(task_id, media)) for task_id in (1, 2)]
    label_studio.on_first_push = lambda: backend.predictions.submit(new_tasks)  # imported mid-sweep

    backend.predictions.submit([PredictionJob("1", version, reason="new model version")])
    backend.predictions.wait_idle(timeout_s=60)

    assert sorted(label_studio.pushed) == sorted([1, 2, *old_tasks])  # each task once
    assert label_studio.pushed.index(1) <= SWEEP_BATCH  # right after the first batch
    progress = backend.health()["predictions"]["1"]
    assert (progress["pushed"], progress["failed"], progress["queued"]) == (len(old_tasks) + 2, 0, 0)
