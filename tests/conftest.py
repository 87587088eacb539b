"""Fixtures shared by all tests: settings on temp dirs, the shared data folder, an app with test models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from utils.service.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (the repo must sit beside ../shared)")
    return SHARED_DATA


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "MODEL_DIR": str(tmp_path / "models"),
            "CACHE_DIR": str(tmp_path / "cache"),
            "MEDIA_ROOTS": str(SHARED_DATA),
            "TORCH_THREADS": "1",
            "MEDIA_TIMEOUT": "2",
        }
    )
