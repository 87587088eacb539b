"""Fixtures of the end-to-end tests: one migrated Label Studio data dir per session, copied for each module;
a Label Studio and a backend (gunicorn) per module on free loopback ports; media served by local-files storage.

Run `bash tests/e2e/setup.sh` once (test.sh does); without it these tests skip, and under CI they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser import SCREENSHOTS

from fixtures.ls_api import Backend, LabelStudio
from fixtures.servers import E2E_DIR, LS_TOKEN, Server, start_backend, start_label_studio
from fixtures.shared_sets import Dataset, timeseries_dataset, video_dataset

SETUP_STATUS = E2E_DIR / "setup.status"
ARTIFACTS = E2E_DIR / "artifacts"
STARTED_KEY = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(STARTED_KEY, False):
        terminalreporter.write_line(f"e2e server logs: {ARTIFACTS}; screenshots: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    """Skips (fails under CI) with the reason recorded by setup.sh when the one-time installs are missing."""
    status = SETUP_STATUS.read_text().strip() if SETUP_STATUS.exists() else "not run"
    if status != "ok":
        reason = f"end-to-end setup {status!r}: run `bash tests/e2e/setup.sh` (see {SETUP_STATUS})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def ls_template(
    e2e_ready: None, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Path:
    """A migrated Label Studio data dir with the test user: the 25-35 s migration happens once."""
    pytestconfig.stash[STARTED_KEY] = True
    root = tmp_path_factory.mktemp("ls-template")
    data_dir, log = root / "data", ARTIFACTS / "label-studio-migrate.log"
    data_dir.mkdir()
    log.unlink(missing_ok=True)
    start_label_studio(data_dir, root, log, timeout_s=240).stop()
    return data_dir


@pytest.fixture(scope="session")
def video_set(data_root: Path) -> Dataset:
    return video_dataset(data_root)


@pytest.fixture(scope="session")
def series_set(data_root: Path) -> Dataset:
    return timeseries_dataset(data_root)


@pytest.fixture(scope="session")
def document_root(
    e2e_ready: None, video_set: Dataset, series_set: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """LOCAL_FILES_DOCUMENT_ROOT shared by Label Studio and the backend, with one folder per data set.
    Copies, not links: the backend refuses paths that resolve outside the document root."""
    root = tmp_path_factory.mktemp("document-root")
    for dataset in (video_set, series_set):
        # copyfile drops the read-only mode of the shared files; the folder itself is made writable below
        shutil.copytree(dataset.source, root / dataset.folder, copy_function=shutil.copyfile)
        (root / dataset.folder).chmod(0o755)
    return root


@pytest.fixture(scope="module")
def label_studio(
    ls_template: Path,
    document_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[LabelStudio]:
    data_dir = tmp_path_factory.mktemp("ls-data") / "data"
    shutil.copytree(ls_template, data_dir)
    log = ARTIFACTS / f"label-studio-{request.module.__name__}.log"
    log.unlink(missing_ok=True)
    print(f"\nLabel Studio log: {log}")
    server = start_label_studio(data_dir, document_root, log)
    yield LabelStudio(server, document_root)
    server.stop()


BackendFactory = Callable[..., Backend]


@pytest.fixture(scope="module")
def start_backend_for(
    label_studio: LabelStudio, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[BackendFactory]:
    """Starts backends connected to this module's Label Studio; `setup(model_dir)` may put files in place
    first (e.g. a YOLO checkpoint), `auth=(user, password)` turns basic auth on."""
    started: list[Server] = []

    def start(
        *,
        auth: tuple[str, str] | None = None,
        setup: Callable[[Path], None] | None = None,
        **env: str,
    ) -> Backend:
        root = tmp_path_factory.mktemp("backend")
        model_dir = root / "models"
        model_dir.mkdir()
        if setup is not None:
            setup(model_dir)
        base_env = {
            "MODEL_DIR": str(model_dir),
            "CACHE_DIR": str(root / "cache"),
            "YOLO_CONFIG_DIR": str(root / "ultralytics"),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": LS_TOKEN,
            "LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root),
            "WORKERS": "1",
            "THREADS": "4",
        }
        if auth:
            base_env.update(BASIC_AUTH_USER=auth[0], BASIC_AUTH_PASS=auth[1])
        log = ARTIFACTS / f"backend-{request.module.__name__}-{len(started)}.log"
        log.unlink(missing_ok=True)
        print(f"\nbackend log: {log}")
        server = start_backend({**base_env, **env}, log, auth=auth)
        started.append(server)
        return Backend(server, auth)

    yield start
    for server in started:
        server.stop()
