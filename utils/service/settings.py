"""Service configuration: typed fields, read once from the environment when the app is created, so nothing
reads `os.environ` later and a bad value stops the start with a message naming the variable."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def _paths(value: str | None) -> tuple[Path, ...]:
    if not value:
        return ()
    return tuple(Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p)


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError("expected true or false")
    return value in TRUE_WORDS


def _number(cast: Callable[[str], T], low: float, high: float = float("inf")) -> Callable[[str], T]:
    def convert(raw: str) -> T:
        value = cast(raw)
        if not low <= value <= high:  # type: ignore[operator]
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return convert


@dataclass(frozen=True)
class TimeSeriesDefaults:
    """What the environment sets for `<TimeSeriesLabels>`, under the names of Label Studio's reference segmenter
    (TRAIN_EPOCHS, ...), so its users keep their settings; None where unset (the net's own default holds)."""

    epochs: int | None = None
    sequence_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    f1_threshold: float | None = None
    accuracy_threshold: float | None = None
    class_weights: bool | None = None
    max_rows: int | None = None
    # a fine-tuning is followed by a training from scratch while the last one took at most this long
    full_retrain_follows_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TimeSeriesDefaults:
        read = _reader(env)
        return cls(
            epochs=read("TRAIN_EPOCHS", None, _number(int, 1)),
            sequence_size=read("SEQUENCE_SIZE", None, _number(int, 1)),
            hidden_size=read("HIDDEN_SIZE", None, _number(int, 1)),
            num_layers=read("NUM_LAYERS", None, _number(int, 1)),
            f1_threshold=read("MIN_CLASS_F1_THRESHOLD", None, _number(float, 0, 1)),
            accuracy_threshold=read("BALANCED_ACCURACY_THRESHOLD", None, _number(float, 0, 1)),
            class_weights=read("USE_CLASS_WEIGHTS", None, _flag),
            max_rows=read("TIMESERIES_MAX_ROWS", None, _number(int, 1)),
            full_retrain_follows_s=read("FULL_RETRAIN_FOLLOWS_S", 60.0, _number(float, 0)),
        )


def _reader(env: Mapping[str, str]) -> Callable[[str, T | None, Callable[[str], T]], T | None]:
    """`read(name, default, cast)`: a variable converted by `cast`, or `default` when unset or empty."""

    def read(name: str, default: T | None, cast: Callable[[str], T]) -> T | None:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"environment variable {name}={raw!r} is invalid: {exc}") from exc

    return read


def _choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    cleaned = value.strip().lower()
    if cleaned not in allowed:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return cleaned


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
    train_threads: int = 1
    media_roots: tuple[Path, ...] = ()
    model_roots: tuple[Path, ...] = ()
    local_files_document_root: Path | None = None
    media_max_bytes: int = 2 * 1024**3
    media_timeout_s: float = 60.0
    feature_cache_max_bytes: int = 5 * 1024**3
    media_cache_max_bytes: int = 10 * 1024**3
    media_allowlist: tuple[str, ...] = ()
    max_request_bytes: int = 32 * 1024**2
    redis_url: str = field(default="", repr=False)
    jobs_queue: str = "temporal-ml"
    job_timeout_s: int = 7200
    job_lock_ttl_s: float = 30.0
    train_debounce_s: float = 1.0
    worker_nice: int = 10
    predict_budget_s: float = 30.0
    video_encode_fps: float = 100.0
    repredict_max_tasks: int = 1000
    push_attempts: int = 4
    push_backoff_s: float = 2.0
    yolo_offline: bool = False  # never try to download a YOLO checkpoint
    timeseries: TimeSeriesDefaults = field(default_factory=TimeSeriesDefaults)
    frame_encoder: str = "auto"  # "auto": ONNX Runtime where it works, else PyTorch; "torch": PyTorch only
    sequence_runtime: str = "auto"  # the same choice for predicting long time series
    model_versions_kept: int = 5
    gate_tolerance: float = 0.05
    gate_min_tasks_to_reject: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        read = _reader(env)
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
            torch_threads=read("TORCH_THREADS", 2, _number(int, 1)),
            train_threads=read("TRAIN_THREADS", 1, _number(int, 1)),
            media_roots=_paths(env.get("MEDIA_ROOTS")),
            model_roots=_paths(env.get("MODEL_ROOTS")),
            local_files_document_root=Path(doc_root).resolve() if doc_root else None,
            media_max_bytes=int(env.get("MEDIA_MAX_BYTES", str(2 * 1024**3))),
            media_timeout_s=float(env.get("MEDIA_TIMEOUT", "60")),
            feature_cache_max_bytes=int(env.get("FEATURE_CACHE_MAX_BYTES", str(5 * 1024**3))),
            media_cache_max_bytes=int(env.get("MEDIA_CACHE_MAX_BYTES", str(10 * 1024**3))),
            media_allowlist=tuple(e.strip() for e in env.get("MEDIA_ALLOWLIST", "").split(",") if e.strip()),
            max_request_bytes=int(env.get("MAX_REQUEST_BYTES", str(32 * 1024**2))),
            redis_url=env.get("REDIS_URL", ""),
            jobs_queue=env.get("JOBS_QUEUE", "temporal-ml"),
            job_timeout_s=int(env.get("JOB_TIMEOUT", "7200")),
            job_lock_ttl_s=max(1.0, float(env.get("JOB_LOCK_TTL", "30"))),
            train_debounce_s=max(0.0, float(env.get("TRAIN_DEBOUNCE_S", "1"))),
            worker_nice=int(env.get("WORKER_NICE", "10")),
            predict_budget_s=float(env.get("PREDICT_BUDGET_S", "30")),
            video_encode_fps=float(env.get("VIDEO_ENCODE_FPS", "100")),
            repredict_max_tasks=max(0, int(env.get("REPREDICT_MAX_TASKS", "1000"))),
            push_attempts=max(1, int(env.get("PUSH_ATTEMPTS", "4"))),
            push_backoff_s=max(0.0, float(env.get("PUSH_BACKOFF_S", "2"))),
            yolo_offline=read("YOLO_OFFLINE", False, _flag),
            timeseries=TimeSeriesDefaults.from_env(env),
            frame_encoder=_choice(env.get("FRAME_ENCODER", "auto"), "FRAME_ENCODER", ("auto", "torch")),
            sequence_runtime=_choice(
                env.get("SEQUENCE_RUNTIME", "auto"), "SEQUENCE_RUNTIME", ("auto", "torch")
            ),
            model_versions_kept=max(1, int(env.get("MODEL_VERSIONS_KEPT", "5"))),
            gate_tolerance=max(0.0, float(env.get("GATE_TOLERANCE", "0.05"))),
            gate_min_tasks_to_reject=max(1, int(env.get("GATE_MIN_TASKS_TO_REJECT", "2"))),
        )

    @property
    def allowed_model_roots(self) -> tuple[Path, ...]:
        """Directories a `model_path` attribute may point into."""
        return (self.model_dir, *self.model_roots)

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.basic_auth_user)
