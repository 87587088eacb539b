"""Shared recordings cut into many small tasks, for the calibration and active-learning benchmarks.

The spliced videos (frame features, cached), the watch recordings and basicmotions are read once; a task is
a slice `name:lo:hi` of one recording. The real control models train and predict on those slices (only their
data loading is replaced, by slicing), so everything from the net to the region scores is the service's own
code. Regions are compared with the ground truth here: a predicted region is right when its IoU with a true
run of its label is >= 0.5; a task's macro-F1 is over the labels of its ground truth (`fixtures.scoring`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from label_studio_sdk.label_interface import LabelInterface

from bench.bench_timeseries_quality import DATA as SERIES_DATA
from bench.bench_timeseries_quality import config_for
from control_models.base import AnnotatedTask, ControlModel, ModelContext, Progress
from control_models.timeline_labels import TimelineLabelsModel
from control_models.timeseries_labels import TimeSeriesLabelsModel
from fixtures.scoring import macro_f1
from fixtures.timeline import FROM_NAME, spliced_checkpoint, spliced_labels, spliced_tasks, timeline_config
from utils.labelstudio.media import MediaResolver
from utils.service.model_store import ModelStore
from utils.service.settings import Settings
from utils.temporal.calibration import is_right, true_segments
from utils.temporal.decoder import Segment, runs
from utils.timeseries.reader import Series, SeriesSpec, read_series
from utils.timeseries.regions import regions_to_targets
from utils.timeseries.time_axis import TimeAxis
from utils.video.encoder import YoloFrameEncoder
from utils.video.feature_cache import FeatureCache
from utils.video.features import FeatureExtractor
from utils.video.regions import regions_to_frame_labels

FEATURE_CACHE = Path(tempfile.gettempdir()) / "bench-chunked-tasks-features"


@dataclass(frozen=True)
class Recording:
    name: str
    steps: np.ndarray  # (n, channels): frame features or signal values
    times: np.ndarray  # (n,): seconds (time series) or frame numbers (video)
    truth: np.ndarray  # (n, labels) 0/1


@dataclass(frozen=True)
class ScoredRegion:
    score: float
    right: bool


@dataclass(frozen=True)
class TaskResult:
    task: str
    score: float  # the task's score as model.py computes it
    macro_f1: float
    regions: list[ScoredRegion]


class Dataset:
    """One kind of recordings and the control model that learns them."""

    kind: str
    labels: list[str]
    recordings: dict[str, Recording]
    config: str
    value_key: str

    def task(self, task_id: int, name: str, lo: int, hi: int, annotated: bool = True) -> AnnotatedTask:
        rec = self.recordings[name]
        regions = self.regions(rec, lo, hi) if annotated else []
        return AnnotatedTask(task_id, {self.value_key: f"{name}:{lo}:{hi}"}, regions)

    def chunks(self, names: list[str], length: int) -> list[tuple[str, int, int]]:
        """Back-to-back slices of about `length` steps of each recording (the last one takes the rest)."""
        out = []
        for name in names:
            n = len(self.recordings[name].steps)
            bounds = np.linspace(0, n, max(1, round(n / length)) + 1).astype(int)
            out.extend((name, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
        return out

    def regions(self, rec: Recording, lo: int, hi: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def predicted_segment(self, region: dict[str, Any], rec: Recording, lo: int, hi: int) -> Segment:
        raise NotImplementedError

    def model(self, tmp: Path, name: str) -> ControlModel:
        raise NotImplementedError

    def evaluate(self, model: ControlModel, task: AnnotatedTask) -> TaskResult:
        name, lo, hi = parse(task.data[self.value_key])
        rec = self.recordings[name]
        truth = rec.truth[lo:hi]
        prediction = model.predict_task({"id": task.task_id, "data": task.data})
        regions = prediction.regions
        segments = [self.predicted_segment(r, rec, lo, hi) for r in regions]
        runs_of = true_segments(truth)
        scored = [
            ScoredRegion(float(r["score"]), is_right(s, runs_of))
            for r, s in zip(regions, segments, strict=True)
        ]
        predicted: dict[str, set[int]] = {}
        for s in segments:
            predicted.setdefault(self.labels[s.label], set()).update(range(s.start, s.end + 1))
        expected = {
            label: set(np.flatnonzero(truth[:, i]).tolist())
            for i, label in enumerate(self.labels)
            if truth[:, i].any()
        }
        return TaskResult(
            task.data[self.value_key],
            prediction.score,
            macro_f1(predicted, expected),
            scored,
        )


def parse(key: str) -> tuple[str, int, int]:
    name, lo, hi = key.rsplit(":", 2)
    return name, int(lo), int(hi)


# --- video -----------------------------------------------------------------------------------------------
class Switchable:
    """`calibrated = False` serves a trained model's predictions as before calibration: no temperature, and
    the mean probability of a region's label as its score (the "before" of the benchmarks)."""

    calibrated = True

    def trained(self) -> tuple[Any, dict[str, Any]] | None:
        saved = super().trained()  # type: ignore[misc]
        if saved is None or self.calibrated:
            return saved
        net, meta = saved
        return net, {k: v for k, v in meta.items() if k != "calibration"}


class SlicedTimeline(Switchable, TimelineLabelsModel):
    """TimelineLabels reading cached frame features of a slice instead of decoding a video."""

    recordings: dict[str, Recording] = {}

    def _frame_features(
        self, task: dict[str, Any], progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        name, lo, hi = parse(task["data"]["video"])
        features = self.recordings[name].steps[lo:hi]
        return features, np.zeros((len(features), 0), dtype=np.float32)


class VideoSet(Dataset):
    kind = "video"
    value_key = "video"

    def __init__(self) -> None:
        self.labels = spliced_labels()
        checkpoint = spliced_checkpoint()
        extractor = FeatureExtractor(
            YoloFrameEncoder(checkpoint, threads=2), FeatureCache(FEATURE_CACHE, 10**9)
        )
        self.recordings = {}
        for task in spliced_tasks():
            video = extractor.features(Path(task["data"]["video"]))
            truth = regions_to_frame_labels(
                task["annotations"][0]["result"], FROM_NAME, self.labels, video.frame_count
            )
            name = Path(task["data"]["video"]).stem
            self.recordings[name] = Recording(
                name, video.features, np.arange(1, video.frame_count + 1), truth
            )
        self.config = timeline_config(self.labels, model_trainable="true", model_path=checkpoint.name)
        self.roots = checkpoint.parent

    def regions(self, rec: Recording, lo: int, hi: int) -> list[dict[str, Any]]:
        out = []
        for i, label in enumerate(self.labels):
            for on, s, e in runs(rec.truth[lo:hi, i].astype(np.int64)):
                if on:
                    value = {"ranges": [{"start": s + 1, "end": e + 1}], "timelinelabels": [label]}
                    out.append(
                        {"from_name": FROM_NAME, "to_name": "video", "type": "timelinelabels", "value": value}
                    )
        return out

    def predicted_segment(self, region: dict[str, Any], rec: Recording, lo: int, hi: int) -> Segment:
        value = region["value"]
        span = value["ranges"][0]
        return Segment(self.labels.index(value["timelinelabels"][0]), span["start"] - 1, span["end"] - 1, 0.0)

    def model(self, tmp: Path, name: str) -> ControlModel:
        settings = Settings.from_env(
            {
                "MODEL_DIR": str(tmp / "models"),
                "CACHE_DIR": str(tmp / "cache"),
                "MODEL_ROOTS": str(self.roots),
                "TORCH_THREADS": "1",
                "YOLO_OFFLINE": "1",
            }
        )
        context = ModelContext(
            store=ModelStore(settings.model_dir).control_store(name, FROM_NAME),
            media=MediaResolver(cache_dir=settings.cache_dir, local_roots=(tmp,)),
            settings=settings,
        )
        SlicedTimeline.recordings = self.recordings
        return SlicedTimeline.create(LabelInterface(self.config).get_control(FROM_NAME), context)


# --- time series -----------------------------------------------------------------------------------------
class SlicedSeries(Switchable, TimeSeriesLabelsModel):
    """TimeSeriesLabels reading a slice of a recording read once."""

    recordings: dict[str, Recording] = {}
    channels: tuple[str, ...] = ()

    def load_series(self, task: dict[str, Any]) -> Series:
        name, lo, hi = parse(task["data"]["csv_url"])
        rec = self.recordings[name]
        return Series(rec.times[lo:hi], rec.steps[lo:hi], self.channels)


class SeriesSet(Dataset):
    kind = "time series"
    value_key = "csv_url"

    def __init__(self, dataset: str) -> None:
        info = json.loads((SERIES_DATA / dataset / "ground_truth.json").read_text())
        self.labels = list(info["info"]["labels"])
        self.channels = tuple(next(iter(info["files"].values()))["channels"])
        spec = SeriesSpec(time_column="time", channels=self.channels)
        self.recordings = {}
        for task in json.loads((SERIES_DATA / dataset / "tasks.json").read_text()):
            name = task["data"]["csv_url"]
            series = read_series(SERIES_DATA / dataset / name, spec)
            truth = regions_to_targets(
                task["annotations"][0]["result"], series.times, self.labels, TimeAxis(), "timeserieslabels"
            ).targets
            self.recordings[name] = Recording(name, series.values, series.times, truth)
        self.config = config_for(dataset)

    def regions(self, rec: Recording, lo: int, hi: int) -> list[dict[str, Any]]:
        out = []
        times = rec.times[lo:hi]
        for i, label in enumerate(self.labels):
            for on, s, e in runs(rec.truth[lo:hi, i].astype(np.int64)):
                if on:
                    value = {"start": float(times[s]), "end": float(times[e]), "timeserieslabels": [label]}
                    out.append(
                        {"from_name": "label", "to_name": "ts", "type": "timeserieslabels", "value": value}
                    )
        return out

    def predicted_segment(self, region: dict[str, Any], rec: Recording, lo: int, hi: int) -> Segment:
        value = region["value"]
        times = rec.times[lo:hi]
        start = int(np.searchsorted(times, float(value["start"]) - 1e-9, side="left"))
        end = int(np.searchsorted(times, float(value["end"]) + 1e-9, side="right")) - 1
        return Segment(self.labels.index(value["timeserieslabels"][0]), start, max(start, end), 0.0)

    def model(self, tmp: Path, name: str) -> ControlModel:
        settings = Settings.from_env(
            {"MODEL_DIR": str(tmp / "models"), "CACHE_DIR": str(tmp / "cache"), "TORCH_THREADS": "1"}
        )
        context = ModelContext(
            store=ModelStore(settings.model_dir).control_store(name, "label"),
            media=MediaResolver(cache_dir=settings.cache_dir, local_roots=(tmp,)),
            settings=settings,
        )
        SlicedSeries.recordings, SlicedSeries.channels = self.recordings, self.channels
        return SlicedSeries.create(list(LabelInterface(self.config).controls)[0], context)


def fit_seconds(model: ControlModel, tasks: list[AnnotatedTask]) -> float:
    started = time.perf_counter()
    model.fit(tasks)
    return time.perf_counter() - started
