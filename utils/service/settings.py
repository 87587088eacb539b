"""Service configuration, read once from the environment when the app is created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


def _paths(value: str | None) -> tuple[Path, ...]:
    if not value:
        return ()
    return tuple(Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p)


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; see the README's settings table for meanings and defaults."""

    model_dir: Path
    cache_dir: Path
    log_level: str = "INFO"
    label_studio_url: str = ""
    label_studio_api_key: str = field(default="", repr=False)
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    torch_threads: int = 2
    media_roots: tuple[Path, ...] = ()
    model_roots: tuple[Path, ...] = ()
    local_files_document_root: Path | None = None
    media_max_bytes: int = 2 * 1024**3
    media_timeout_s: float = 60.0
    feature_cache_max_bytes: int = 5 * 1024**3
    model_versions_kept: int = 5
    gate_tolerance: float = 0.05
    # The raw environment snapshot taken at creation: control models read their own defaults from it
    # (e.g. the reference backend's TRAIN_EPOCHS), so nothing reads os.environ later.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        model_dir = Path(env.get("MODEL_DIR", "./data/models")).expanduser().resolve()
        cache_dir = Path(env.get("CACHE_DIR", "./data/cache")).expanduser().resolve()
        doc_root = env.get("LOCAL_FILES_DOCUMENT_ROOT")
        return cls(
            model_dir=model_dir,
            cache_dir=cache_dir,
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            label_studio_url=env.get("LABEL_STUDIO_URL", "").rstrip("/"),
            label_studio_api_key=env.get("LABEL_STUDIO_API_KEY", ""),
            basic_auth_user=env.get("BASIC_AUTH_USER", ""),
            basic_auth_pass=env.get("BASIC_AUTH_PASS", ""),
            torch_threads=max(1, int(env.get("TORCH_THREADS", "2"))),
            media_roots=_paths(env.get("MEDIA_ROOTS")),
            model_roots=_paths(env.get("MODEL_ROOTS")),
            local_files_document_root=Path(doc_root).resolve() if doc_root else None,
            media_max_bytes=int(env.get("MEDIA_MAX_BYTES", str(2 * 1024**3))),
            media_timeout_s=float(env.get("MEDIA_TIMEOUT", "60")),
            feature_cache_max_bytes=int(env.get("FEATURE_CACHE_MAX_BYTES", str(5 * 1024**3))),
            model_versions_kept=max(1, int(env.get("MODEL_VERSIONS_KEPT", "5"))),
            gate_tolerance=max(0.0, float(env.get("GATE_TOLERANCE", "0.05"))),
            env=MappingProxyType(env),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced; tests use it to point dirs at temp folders."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Settings(**values)  # type: ignore[arg-type]

    @property
    def allowed_model_roots(self) -> tuple[Path, ...]:
        """Directories a `model_path` attribute may point into."""
        return (self.model_dir, *self.model_roots)

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.basic_auth_user)
