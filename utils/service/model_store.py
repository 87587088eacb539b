"""Versioned model storage: a state dict plus JSON metadata per control, loaded without unpickling."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from utils.service.files import read_json, safe_name, write_atomic, write_json_atomic

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 3


class ControlStore:
    """Saves of one control model of one project. `current.json` names the live version directory,
    and is replaced only after that directory is complete, so a crash keeps the previous model."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def _pointer(self) -> Path:
        return self.root / "current.json"

    def current_version(self) -> str | None:
        pointer = read_json(self._pointer, default={})
        return pointer.get("version") if isinstance(pointer, dict) else None

    def save(self, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
        version = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}"  # sorts by time
        version_dir = self.root / "versions" / version
        version_dir.mkdir(parents=True)
        write_atomic(version_dir / "model.pt", lambda tmp: torch.save(state_dict, tmp))
        write_json_atomic(version_dir / "meta.json", {**meta, "version": version})
        write_json_atomic(self._pointer, {"version": version})
        self._prune(keep=version)
        return version

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The live model, or None when nothing was trained or the files are unreadable."""
        version = self.current_version()
        if version is None:
            return None
        version_dir = self.root / "versions" / safe_name(version)
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

    def _prune(self, keep: str) -> None:
        versions = sorted(p for p in (self.root / "versions").iterdir() if p.is_dir())
        for old in versions[:-KEEP_VERSIONS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)


class ModelStore:
    """All models under MODEL_DIR: `projects/<project>/controls/<control>/...` plus a project version."""

    def __init__(self, root: Path):
        self.root = root

    def project_dir(self, project_id: str) -> Path:
        return self.root / "projects" / safe_name(project_id)

    def control_store(self, project_id: str, control_name: str) -> ControlStore:
        return ControlStore(self.project_dir(project_id) / "controls" / safe_name(control_name))

    def project_version(self, project_id: str) -> dict[str, Any]:
        """`{"n": trainings so far, "version": label}`; n is 0 before the first successful training."""
        data = read_json(self.project_dir(project_id) / "version.json", default={})
        return data if isinstance(data, dict) and "n" in data else {"n": 0, "version": "v0"}

    def bump_project_version(self, project_id: str) -> str:
        """Record one more successful training; callers hold the project's training lock."""
        n = int(self.project_version(project_id)["n"]) + 1
        version = f"v{n}-{time.strftime('%Y%m%d%H%M%S')}"
        write_json_atomic(self.project_dir(project_id) / "version.json", {"n": n, "version": version})
        return version
