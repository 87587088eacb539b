"""Before a trainable video project's first model, /predict for an opened task answers at once with no regions
and a job encodes the task's video meanwhile, so the first training starts on cached features; bulk requests
queue no encoding; one video is encoded once, however many threads ask for it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from fixtures.data import TEST_DATA
from fixtures.servers import wait_until
from fixtures.timeline import spliced_checkpoint, spliced_labels, spliced_tasks, timeline_config
from model import TemporalBackend
from utils.service.settings import Settings
from utils.video.encoder import YoloFrameEncoder
from utils.video.feature_cache import FeatureCache
from utils.video.features import FeatureExtractor

ENCODED = "encoded %s: %d frames (step %d) in %.1f s"


def encodings(caplog: pytest.LogCaptureFixture, video: str) -> int:
    return sum(r.msg == ENCODED and r.args[0] == video for r in caplog.records)


def untrained_video_project(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> tuple[TemporalBackend, str]:
    """A backend on an empty feature cache and a trainable video config with no model yet; encodings logged."""
    caplog.set_level(logging.INFO, logger="utils.video.features")
    checkpoint = spliced_checkpoint()
    backend = TemporalBackend(
        Settings.from_env(
            {
                "MODEL_DIR": str(tmp_path / "models"),
                "CACHE_DIR": str(tmp_path / "cache"),
                "MODEL_ROOTS": str(checkpoint.parent),
                "MEDIA_ROOTS": str(TEST_DATA),
                "TORCH_THREADS": "1",
                "TRAIN_DEBOUNCE_S": "0",
            }
        )
    )
    config = timeline_config(
        spliced_labels(), model_trainable="true", model_path=str(checkpoint), model_classifier_epochs="5"
    )
    return backend, config


def test_a_video_opened_before_the_first_training_is_encoded_by_then(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, config = untrained_video_project(tmp_path, caplog)
    source = spliced_tasks()[0]
    task = {"id": 1, "data": source["data"]}
    video = Path(task["data"]["video"]).name

    answer = backend.predict([task], 1, config)
    assert answer["results"][0]["result"] == []  # no model yet: answered at once
    wait_until(lambda: encodings(caplog, video), 120, f"{video} encoded by the job /predict queued")
    backend.predict([task], 1, config)  # opened again: queued once, encoded once

    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 1, "label_config": config},
        "task": task,
        "annotation": {"id": 1, "result": source["annotations"][0]["result"]},
    }
    backend.handle_event("ANNOTATION_CREATED", event)
    state = backend.jobs.wait_idle("1", timeout_s=300)
    assert state["trained"] == 1 and state["last"]["status"] == "finished"
    assert encodings(caplog, video) == 1  # the training read the job's features

    # with a model, /predict reads the same cached features
    assert backend.predict([task], 1, config)["results"][0]["result"]
    assert encodings(caplog, video) == 1


def test_a_bulk_prediction_request_queues_no_encoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, config = untrained_video_project(tmp_path, caplog)
    first, second, third = ({"id": t["id"], "data": t["data"]} for t in spliced_tasks()[:3])
    videos = [Path(t["data"]["video"]).name for t in (first, second, third)]

    assert [r["result"] for r in backend.predict([second, third], 1, config)["results"]] == [[], []]
    backend.predict([first], 1, config)  # opened: its job runs after any the bulk request queued
    wait_until(lambda: encodings(caplog, videos[0]), 120, f"{videos[0]} encoded")
    assert encodings(caplog, videos[1]) == encodings(caplog, videos[2]) == 0


def test_threads_asking_for_one_uncached_video_at_once_encode_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="utils.video.features")
    extractor = FeatureExtractor(
        YoloFrameEncoder(spliced_checkpoint(), threads=1), FeatureCache(tmp_path / "features", 10**8)
    )
    video = Path(spliced_tasks()[0]["data"]["video"])
    start = threading.Barrier(3)
    frames: list[int] = []

    def read() -> None:
        start.wait()
        frames.append(extractor.features(video).frame_count)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(frames) == 3 and len(set(frames)) == 1
    assert encodings(caplog, video.name) == 1
