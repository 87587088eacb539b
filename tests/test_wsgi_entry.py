"""`gunicorn _wsgi:app`: the module-level app is built lazily, once, from the environment."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import _wsgi


@pytest.fixture
def fresh_wsgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    module = importlib.reload(_wsgi)
    yield module
    module._app = None


def test_importing_wsgi_builds_nothing(fresh_wsgi, tmp_path: Path) -> None:
    assert fresh_wsgi._app is None
    assert not (tmp_path / "models").exists()


def test_app_is_built_on_first_access_and_reused(fresh_wsgi, tmp_path: Path) -> None:
    app = fresh_wsgi.app
    assert app is fresh_wsgi.app
    assert (tmp_path / "models").is_dir()
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "UP"


def test_other_missing_attributes_still_raise(fresh_wsgi) -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = fresh_wsgi.no_such_thing
