"""Fixtures shared by all tests: settings on temp dirs and the test data folder (`tests/data`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.data import TEST_DATA
from utils.service.settings import Settings

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The small data sets inside the repo (tests/data; its README says where each came from)."""
    if not TEST_DATA.is_dir():
        pytest.fail(f"test data not found at {TEST_DATA}: it is part of the repository, restore it from git")
    return TEST_DATA


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "MODEL_DIR": str(tmp_path / "models"),
            "CACHE_DIR": str(tmp_path / "cache"),
            "MEDIA_ROOTS": str(TEST_DATA),
            "TORCH_THREADS": "1",
            "MEDIA_TIMEOUT": "2",
            "TRAIN_DEBOUNCE_S": "0",  # trainings start at once; tests of bursts set a quiet period
        }
    )
