"""Versioned model storage: a state dict plus JSON metadata per control, loaded without unpickling.

Each control keeps its last N versions under `versions/<id>/`: `model.pt` and `meta.json` from the control
model, `record.json` with the training summary and the gate's verdict. `current.json` names the serving
version and whether a person pinned it. Every worker reads it on each request, so a promotion, a pin or an
unpin is seen by all of them at once; nothing about versions lives in process memory."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import torch

from utils.service.files import read_json, safe_name, write_atomic, write_json_atomic
from utils.service.locks import file_lock

logger = logging.getLogger(__name__)

DEFAULT_KEEP_VERSIONS = 5


class ControlStore:
    """Saves of one control model of one project. `current.json` is replaced only after a version directory
    is complete, so a crash keeps the previous model.

    `staging()` and `at(version)` give views on the same files: the first saves candidates that serve only
    once promoted, the second loads one version as if it served (the gate scores candidates with it)."""

    def __init__(
        self,
        root: Path,
        keep: int = DEFAULT_KEEP_VERSIONS,
        *,
        promote_on_save: bool = True,
        fixed_version: str | None = None,
    ):
        self.root = root
        self.keep = max(1, keep)
        self._promote_on_save = promote_on_save
        self._fixed_version = fixed_version
        self.saved_version: str | None = None  # the last version this view saved

    def staging(self) -> ControlStore:
        return ControlStore(self.root, self.keep, promote_on_save=False)

    def at(self, version: str) -> ControlStore:
        return ControlStore(self.root, self.keep, fixed_version=version)

    # --- serving pointer -----------------------------------------------------------------------
    @property
    def _pointer(self) -> Path:
        return self.root / "current.json"

    @contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        """Serialises pointer changes and pruning across threads and worker processes."""
        with file_lock(self.root / "current.lock"):
            yield

    def _pointer_state(self) -> dict[str, Any]:
        state = read_json(self._pointer, default={})
        return state if isinstance(state, dict) else {}

    def current_version(self) -> str | None:
        return self._fixed_version or self._pointer_state().get("version")

    def is_pinned(self) -> bool:
        return bool(self._pointer_state().get("pinned"))

    def promote(self, version: str) -> bool:
        """Make `version` serve unless a person pinned another one; True when it serves now."""
        with self._pointer_lock():
            if self._pointer_state().get("pinned"):
                logger.info("%s: %s is kept as a candidate; a pinned version serves", self.root, version)
                return False
            write_json_atomic(self._pointer, {"version": version, "pinned": False})
        return True

    def pin(self, version: str) -> None:
        """Serve `version` until `unpin`, whatever later trainings produce (a rollback)."""
        with self._pointer_lock():
            if version not in self.version_names():
                raise KeyError(version)
            write_json_atomic(self._pointer, {"version": version, "pinned": True})

    def unpin(self) -> str | None:
        """Serve the newest version the gate accepted again; returns it."""
        with self._pointer_lock():
            accepted = [v for v in self.version_names() if self.read_record(v).get("accepted", True)]
            version = accepted[-1] if accepted else self._pointer_state().get("version")
            if version is not None:
                write_json_atomic(self._pointer, {"version": version, "pinned": False})
        return version

    # --- versions ------------------------------------------------------------------------------
    def _dir(self, version: str) -> Path:
        return self.root / "versions" / safe_name(version)

    def version_names(self) -> list[str]:
        """Complete versions, oldest first (names sort by time)."""
        root = self.root / "versions"
        if not root.is_dir():
            return []
        return sorted(
            p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "meta.json").is_file()
        )

    def save(self, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
        version = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid4().hex[:6]}"  # sorts by time
        version_dir = self._dir(version)
        version_dir.mkdir(parents=True)
        write_atomic(version_dir / "model.pt", lambda tmp: torch.save(state_dict, tmp))
        write_json_atomic(version_dir / "meta.json", {**meta, "version": version})
        self.saved_version = version
        if self._promote_on_save:
            self.promote(version)
        self.prune(protect={version})
        return version

    def record(self, version: str, record: dict[str, Any]) -> None:
        """Keep what a training and the gate said about `version` beside it (listed by `versions()`)."""
        write_json_atomic(self._dir(version) / "record.json", record)

    def read_record(self, version: str) -> dict[str, Any]:
        record = read_json(self._dir(version) / "record.json", default={})
        return record if isinstance(record, dict) else {}

    def versions(self) -> list[dict[str, Any]]:
        """Every kept version, newest first, with its record and whether it serves or is pinned."""
        state = self._pointer_state()
        serving = state.get("version")
        return [
            {
                "version": version,
                "serving": version == serving,
                "pinned": version == serving and bool(state.get("pinned")),
                **self.read_record(version),
            }
            for version in reversed(self.version_names())
        ]

    def prune(self, protect: set[str]) -> None:
        """Delete the oldest versions beyond `keep`, never the serving one or those in `protect`. Each goes
        by one rename first, so a reader sees a whole version or none."""
        with self._pointer_lock():
            names = self.version_names()
            keep = {*protect, self._pointer_state().get("version")}
            excess = len(names) - self.keep
            for old in names:
                if excess <= 0:
                    break
                if old in keep:
                    continue
                trash = self._dir(old).with_name(f".{old}.deleted")
                os.replace(self._dir(old), trash)
                shutil.rmtree(trash, ignore_errors=True)
                excess -= 1

    # --- loading -------------------------------------------------------------------------------
    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The serving model, or None when nothing was trained or the files are unreadable."""
        version = self.current_version()
        if version is None:
            return None
        version_dir = self._dir(version)
        meta = read_json(version_dir / "meta.json")
        try:
            state = torch.load(version_dir / "model.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means "no usable model"
            logger.error("model %s is unreadable: %s", version_dir, exc)
            return None
        if not isinstance(meta, dict):
            logger.error("model %s has no readable metadata", version_dir)
            return None
        return state, meta

    def load_meta(self) -> dict[str, Any] | None:
        version = self.current_version()
        if version is None:
            return None
        meta = read_json(self._dir(version) / "meta.json")
        return meta if isinstance(meta, dict) else None


class ModelStore:
    """All models under MODEL_DIR: `projects/<project>/controls/<control>/...`."""

    def __init__(self, root: Path, keep_versions: int = DEFAULT_KEEP_VERSIONS):
        self.root = root
        self.keep_versions = keep_versions

    def project_dir(self, project_id: str) -> Path:
        return self.root / "projects" / safe_name(project_id)

    def control_store(self, project_id: str, control_name: str) -> ControlStore:
        return ControlStore(
            self.project_dir(project_id) / "controls" / safe_name(control_name), self.keep_versions
        )
