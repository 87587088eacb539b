"""Rollback in a real gunicorn with two worker processes: once a version is pinned through POST /versions,
every /predict and /setup answer, from whichever worker, reports the pinned version and predicts with it.
Needs no Label Studio: the versions are trained in this process on the backend's MODEL_DIR."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from fixtures.servers import start_backend
from model import TemporalBackend
from tests.series_support import TS_CONFIG, annotate, ts_regions, write_series
from utils.service.settings import Settings

pytestmark = pytest.mark.e2e

API_KEY = "pinning-token"
PROJECT = "1.1700000000"


def first_label(answer: dict) -> str:
    """The label of the earliest predicted region (the 'Up' segment of the series, when not mislabelled)."""
    regions = sorted(answer["result"], key=lambda r: r["value"]["start"])
    return regions[0]["value"]["timeserieslabels"][0]


def test_a_pinned_version_is_reported_and_used_by_every_worker_at_once(tmp_path: Path) -> None:
    media, model_dir = tmp_path / "media", tmp_path / "models"
    media.mkdir()
    settings = Settings.from_env(
        {
            "MODEL_DIR": str(model_dir),
            "CACHE_DIR": str(tmp_path / "cache"),
            "TORCH_THREADS": "1",
            "MEDIA_ROOTS": str(media.resolve()),
        }
    )
    trainer = TemporalBackend(settings)
    tasks = {i: {"csv": str(write_series(media / f"s{i}.csv", i))} for i in (1, 2, 3)}
    for task_id, data in tasks.items():
        annotate(trainer, TS_CONFIG, task_id, data, ts_regions())
    honest = trainer.train_project("1")["metrics"]["label"]["version"]
    for task_id, data in tasks.items():  # relabelled: the second version calls the raised level 'Down'
        annotate(trainer, TS_CONFIG, task_id, data, ts_regions(swap=True))
    relabelled = trainer.train_project("1")["metrics"]["label"]
    if not relabelled["serving"]:  # a fine-tuning the gate refuses is followed by a training from scratch
        relabelled = trainer.jobs.wait_idle("1", timeout_s=300)["last"]["metrics"]["label"]
    assert relabelled["serving"], relabelled

    server = start_backend(
        {
            "MODEL_DIR": str(model_dir),
            "CACHE_DIR": str(tmp_path / "cache"),
            "MEDIA_ROOTS": str(media.resolve()),
            "WORKERS": "2",
            "THREADS": "4",
            "LABEL_STUDIO_API_KEY": API_KEY,
            "LOG_LEVEL": "INFO",
            "ACCESS_LOG": "true",
            "GUNICORN_CMD_ARGS": "--access-logformat 'ACCESS %(p)s %(U)s'",
        },
        tmp_path / "backend.log",
    )
    try:
        predict_body = {"tasks": [{"id": 1, "data": tasks[1]}], "project": PROJECT, "label_config": TS_CONFIG}
        setup_body = {"project": PROJECT, "schema": TS_CONFIG}

        def answers(count: int = 24) -> list[tuple[str, str, str]]:
            """(predicted model_version, first label, /setup model_version), many requests at once."""

            def one(_: int) -> tuple[str, str, str]:
                predicted = requests.post(f"{server.url}/predict", json=predict_body, timeout=60).json()
                setup = requests.post(f"{server.url}/setup", json=setup_body, timeout=60).json()
                item = predicted["results"][0]
                return item["model_version"], first_label(item), setup["model_version"]

            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(one, range(count)))

        before = set(answers())
        assert len(before) == 1 and next(iter(before))[1] == "Down", before

        pinned = requests.post(
            f"{server.url}/versions",
            json={"project": 1, "control": "label", "version": honest},
            headers={"Authorization": f"Token {API_KEY}"},
            timeout=30,
        )
        assert pinned.status_code == 200, pinned.text
        pinned_at = len(server.log_path.read_text(errors="replace"))
        for _ in range(10):  # until both workers have answered since the pin
            after = set(answers())
            assert len(after) == 1, after
            version, label, setup_version = next(iter(after))
            assert version == setup_version == pinned.json()["model_version"] and version.startswith(honest)
            assert label == "Up"
            log = server.log_path.read_text(errors="replace")[pinned_at:]
            if len(set(re.findall(r"ACCESS <(\d+)> /predict", log))) == 2:
                break
        else:
            pytest.fail(f"one worker answered every request since the pin:\n{server.log_tail()}")
    finally:
        server.stop()
