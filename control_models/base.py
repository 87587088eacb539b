"""The contract between model.py and one control tag's model (one subclass per tag)."""

from __future__ import annotations

import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from label_studio_sdk.label_interface.control_tags import ControlTag

from utils.labelstudio.media import MediaResolver
from utils.service.errors import LabelConfigError, TaskError
from utils.service.model_store import ControlStore
from utils.service.resources import ResourceCache
from utils.service.settings import Settings

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (frames or samples done, total): long predictions report it


@dataclass(frozen=True)
class ModelContext:
    """What a control model may touch: its own store, media access, settings and shared caches."""

    store: ControlStore
    media: MediaResolver
    settings: Settings
    resources: ResourceCache = field(default_factory=ResourceCache)


@dataclass(frozen=True)
class AnnotatedTask:
    """One task as training data for one control: the chosen annotation's regions of that control only."""

    task_id: int
    data: dict[str, Any]
    regions: list[dict[str, Any]]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSteps:
    """One task on the control's time steps (frames or samples), for data checks and the held-out gate."""

    inputs: np.ndarray  # (steps, channels): what the model reads for each step
    targets_of: Callable[[list[dict[str, Any]]], np.ndarray]  # regions -> (steps, labels) 0/1


@dataclass(frozen=True)
class TaskPrediction:
    """One control's prediction for a task: its regions, and the task's score, how sure the model is of
    them all (0 before training; see `utils.temporal.task_score`)."""

    regions: list[dict[str, Any]]
    score: float = 0.0


class ControlModel(ABC):
    """Predicts and learns the regions of one control tag (e.g. a `<TimelineLabels>`) of one project.

    Subclasses set `tag` and `object_tags`, read their attributes in `configure()` (called by `create()`),
    and implement `predict_task()`, `fit()` and `restore()`. Construction does no work; `create()` is where
    config errors surface.
    """

    tag: ClassVar[str]
    object_tags: ClassVar[tuple[str, ...]]

    def __init__(self, control: ControlTag, context: ModelContext):
        self.control = control
        self.context = context
        self.from_name: str = control.name
        self.to_name: str = control.to_name[0]
        self.object_tag = control.objects[0]
        self.value_key: str = self.object_tag.value_name
        self.labels: list[str] = list(control.labels)
        self._saved_lock = threading.Lock()
        self._saved_version: str | None = None
        self._saved: tuple[Any, dict[str, Any]] | None = None
        self._untrained_logged = False

    # --- dispatch -------------------------------------------------------------------------
    @classmethod
    def is_control_matched(cls, control: ControlTag) -> bool:
        return (
            control.tag == cls.tag and len(control.objects) > 0 and control.objects[0].tag in cls.object_tags
        )

    @classmethod
    def create(cls, control: ControlTag, context: ModelContext) -> ControlModel:
        """Build the model for this control, raising LabelConfigError when its attributes are unusable."""
        if not control.labels:
            raise LabelConfigError(f"<{cls.tag} name={control.name!r}> has no <Label> children")
        model = cls(control, context)
        model.configure()
        return model

    def configure(self) -> None:
        """Read the tag's attributes and prepare what predictions need (e.g. load an encoder); raise
        LabelConfigError naming the attribute that is unusable."""
        return None

    # --- work -----------------------------------------------------------------------------
    @abstractmethod
    def predict_task(self, task: dict[str, Any], progress: Progress | None = None) -> TaskPrediction:
        """Regions for one task (may be empty before training) and the task's score; raise TaskError when
        the task is unusable."""

    def predict_regions(self, task: dict[str, Any], progress: Progress | None = None) -> list[dict[str, Any]]:
        """The regions of `predict_task`."""
        return self.predict_task(task, progress).regions

    @property
    def ready(self) -> bool:
        """Whether predictions can hold regions now (a trained model exists), so pushing them is useful."""
        return self.context.store.current_version() is not None

    def predict_seconds(self, task: dict[str, Any]) -> float:
        """Estimated time `predict_regions(task)` takes; /predict hands tasks over its budget to a job."""
        return 0.0

    @property
    def prepares_ahead(self) -> bool:
        """Whether a task seen by /predict should have its media read now, in a job (see `prepare`): true
        where predictions stay empty until a first training that will need what reading them gives."""
        return False

    def prepare(self, task: dict[str, Any]) -> None:
        """Read the task's media into the caches training reads from; raise TaskError when unusable."""
        return None

    @abstractmethod
    def fit(
        self, tasks: list[AnnotatedTask], warm_start: bool = True, calibrate_on: Sequence[AnnotatedTask] = ()
    ) -> dict[str, Any]:
        """Train on all annotated tasks of the project, save a new version, and return its metrics.
        Return `{"skipped": reason}` without saving when there is nothing to learn. With `warm_start`, a
        model may fine-tune the serving one when its labels and inputs are unchanged; without, it trains
        from scratch (START_TRAINING). `calibrate_on`: annotated tasks kept out of training (the gate's
        held-out tasks), on which a model that calibrates its scores fits that calibration too."""

    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> Any:
        """The predictor (e.g. a net in eval mode) from a saved state dict and its metadata; raise ValueError,
        KeyError, TypeError or RuntimeError when it does not fit this control."""
        raise NotImplementedError(f"{type(self).__name__} saves no model")

    def trained(self) -> tuple[Any, dict[str, Any]] | None:
        """`(restore(...), meta)` of the saved model, reloaded whenever another worker or thread saved a newer
        version; None before the first training or while the saved model is unusable."""
        version = self.context.store.current_version()
        with self._saved_lock:
            if version != self._saved_version:
                self._saved, self._saved_version = self._load_saved(version), version
            if self._saved is None and not self._untrained_logged:
                logger.info(
                    "%s: no usable trained model; predictions stay empty until training", self.from_name
                )
                self._untrained_logged = True
            return self._saved

    def _load_saved(self, version: str | None) -> tuple[Any, dict[str, Any]] | None:
        saved = self.context.store.load() if version is not None else None
        if saved is None:
            return None
        state, meta = saved
        try:
            return self.restore(state, meta), meta
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            logger.error("%s: saved model %s is unusable (%s); retrain it", self.from_name, version, exc)
            return None

    def task_steps(self, task: dict[str, Any]) -> TaskSteps | None:
        """The task on this control's time steps; raise TaskError when it is unreadable. Models that return
        None train on every task unchecked, and their candidates serve without the held-out gate."""
        return None

    @property
    def version(self) -> str:
        """The saved version this model predicts with, or a fixed name before any training."""
        return self.context.store.current_version() or "untrained"

    # --- helpers for subclasses ------------------------------------------------------------
    def attr(self, name: str, default: T, cast: Callable[[str], T]) -> T:
        """A tag attribute converted by `cast`; a bad value is a config error that names the attribute."""
        raw = self.control.attr.get(name)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except (TypeError, ValueError) as exc:
            raise LabelConfigError(
                f"<{self.tag} name={self.from_name!r}> attribute {name}={raw!r} is invalid: {exc}"
            ) from exc

    def task_value(self, task: dict[str, Any]) -> Any:
        """The task data this control's object tag points at (`$video` -> task['data']['video'])."""
        data = task.get("data") or {}
        if self.value_key not in data:
            raise TaskError(f"task {task.get('id')} has no data field {self.value_key!r}")
        return data[self.value_key]

    def region(self, value: dict[str, Any], score: float) -> dict[str, Any]:
        """One prediction region of this control, in Label Studio's result format."""
        return {
            "id": uuid.uuid4().hex[:10],
            "from_name": self.from_name,
            "to_name": self.to_name,
            "type": self.tag.lower(),
            "origin": "prediction",
            "value": value,
            "score": float(score),
        }


def parse_bool(raw: str) -> bool:
    """Tag attributes are strings: 'true'/'1'/'yes' are true, 'false'/'0'/'no' false."""
    value = raw.strip().lower()
    if value in {"true", "1", "yes", "on"}:
        return True
    if value in {"false", "0", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def checked(cast: Callable[[str], T], ok: Callable[[T], bool], expected: str) -> Callable[[str], T]:
    """A caster that also rejects values failing `ok`, saying what was `expected`."""

    def convert(raw: str) -> T:
        value = cast(raw)
        if not ok(value):
            raise ValueError(f"expected {expected}")
        return value

    return convert


def positive(cast: Callable[[str], T]) -> Callable[[str], T]:
    """For attributes that must be > 0, e.g. `self.attr("x", 16, positive(int))`."""
    return checked(cast, lambda value: value > 0, "a number > 0")  # type: ignore[operator]


def non_negative(cast: Callable[[str], T]) -> Callable[[str], T]:
    """For attributes that must be >= 0, e.g. `self.attr("x", 2, non_negative(int))`."""
    return checked(cast, lambda value: value >= 0, "a number >= 0")  # type: ignore[operator]


def fraction(raw: str) -> float:
    """Probabilities and thresholds: a number between 0 and 1."""
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return value
