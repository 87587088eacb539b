"""`<TimelineLabels>` on `<Video>`: per-frame YOLO class probabilities (simple mode) or a temporal network
trained on YOLO frame features from every annotated task (trainable mode).

Tag attributes (defaults in brackets): `model_trainable` [false]; `model_path` [yolov8n-cls.pt, looked up in
MODEL_DIR / MODEL_ROOTS]; `model_score_threshold` [0.5]; `model_frame_step` [1: encode every k-th frame];
`model_min_segment_frames` [3], `model_merge_gap_frames` [2] and `model_switch_cost` [0.5 nats per minimum
frame: what a label switch costs in the decoder's Viterbi smoothing; 0 = the plain threshold] against
flicker; trainable mode:
`model_classifier_epochs` [1000], `model_classifier_sequence_size` [16], `model_classifier_hidden_size` [32],
`model_classifier_num_layers` [1], `model_classifier_f1_threshold` [0.95] and
`model_classifier_accuracy_threshold` [1.0] (early stop once held-out frames reach both). Simple mode maps
labels to classes by name or `<Label predicted_values="a,b">`. Frames follow `<Video frameRate>` [24; `$field`
reads it from the task], aligned to the decoded video by time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from control_models.base import (
    AnnotatedTask,
    ControlModel,
    Progress,
    TaskPrediction,
    TaskSteps,
    fraction,
    non_negative,
    parse_bool,
    positive,
)
from utils.service.errors import LabelConfigError, TaskError
from utils.temporal.calibration import Calibration, fit_calibration
from utils.temporal.decoder import SWITCH_COST_PER_STEP, Segment, decode_multilabel
from utils.temporal.task_score import task_score
from utils.temporal.timeline_net import (
    HOLDOUT_BLOCK,
    TimelineNet,
    TimelineNetConfig,
    TimelineTrainConfig,
    predict_proba,
)
from utils.temporal.timeline_net import fit as fit_net
from utils.temporal.training import holdout_split, new_net
from utils.video.encoder import YoloFrameEncoder, resolve_checkpoint
from utils.video.feature_cache import FeatureCache
from utils.video.features import FeatureExtractor
from utils.video.frame_rows import Rows
from utils.video.reader import probe_video
from utils.video.regions import regions_to_frame_labels, segment_value
from utils.video.throughput import EncodeRate
from utils.video.timing import (
    decoded_index_for_ls_frames,
    label_studio_frame_count,
    rates_differ,
    resolve_frame_rate,
)

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "yolov8n-cls.pt"


class TimelineLabelsModel(ControlModel):
    """One `<TimelineLabels>` control; attributes are read once in `configure()`."""

    tag = "TimelineLabels"
    object_tags = ("Video",)

    # --- configuration ---------------------------------------------------------------------
    def configure(self) -> None:
        attr = self.attr
        self.trainable = attr("model_trainable", False, parse_bool)
        self.score_threshold = attr("model_score_threshold", 0.5, fraction)
        self.frame_step = attr("model_frame_step", 1, positive(int))
        self.min_segment_frames = attr("model_min_segment_frames", 3, positive(int))
        self.merge_gap_frames = attr("model_merge_gap_frames", 2, non_negative(int))
        self.switch_cost = attr(
            "model_switch_cost", SWITCH_COST_PER_STEP * self.min_segment_frames, non_negative(float)
        )
        self.hidden_size = attr("model_classifier_hidden_size", 32, positive(int))
        self.num_layers = attr("model_classifier_num_layers", 1, positive(int))
        self.train_config = TimelineTrainConfig(
            epochs=attr("model_classifier_epochs", 1000, positive(int)),
            sequence_size=attr("model_classifier_sequence_size", 16, positive(int)),
            f1_threshold=attr("model_classifier_f1_threshold", 0.95, fraction),
            accuracy_threshold=attr("model_classifier_accuracy_threshold", 1.0, fraction),
            threshold=self.score_threshold,
        )
        frame_rate = self.object_tag.attr.get("frameRate")
        if frame_rate and not str(frame_rate).startswith("$"):
            try:
                resolve_frame_rate(frame_rate, {})
            except ValueError as exc:
                raise LabelConfigError(f"<Video name={self.to_name!r}> attribute {exc}") from exc
        settings = self.context.settings
        self.checkpoint = resolve_checkpoint(
            attr("model_path", DEFAULT_CHECKPOINT, str),
            model_dir=settings.model_dir,
            allowed_roots=settings.allowed_model_roots,
            allow_download=not settings.yolo_offline,
        )
        encoder = self._encoder()
        if not self.trainable:
            self.class_map = self._match_classes(encoder.names)

    def _match_classes(self, names: dict[int, str]) -> dict[str, list[int]]:
        """Label -> model class ids: the label itself or its `predicted_values` (comma separated)."""
        by_name: dict[str, int] = {name.lower(): index for index, name in names.items()}
        class_map: dict[str, list[int]] = {}
        for label in self.labels:
            wanted = self.control.labels_attrs[label].attr.get("predicted_values") or label
            ids = [by_name[v.strip().lower()] for v in wanted.split(",") if v.strip().lower() in by_name]
            if ids:
                class_map[label] = ids
        if not class_map:
            raise LabelConfigError(
                f"<TimelineLabels name={self.from_name!r}> is in simple mode (model_trainable is not true) but "
                f"none of its labels {self.labels} matches a class of {self.checkpoint.name} "
                f"(e.g. {', '.join(list(names.values())[:8])}). Use class names as labels, map them with "
                '<Label value="..." predicted_values="class1,class2"/>, or set model_trainable="true"'
            )
        unmatched = [label for label in self.labels if label not in class_map]
        if unmatched:
            logger.info("%s: labels without a model class are never predicted: %s", self.from_name, unmatched)
        return class_map

    # --- shared resources -------------------------------------------------------------------
    def _encoder(self) -> YoloFrameEncoder:
        settings = self.context.settings
        key = (
            "yolo-frame-encoder",
            str(self.checkpoint),
            self.checkpoint.stat().st_mtime_ns,
            settings.torch_threads,
            settings.frame_encoder,
            str(settings.cache_dir),
        )
        onnx_dir = settings.cache_dir / "onnx" if settings.frame_encoder == "auto" else None
        return self.context.resources.get_or_create(
            key, lambda: YoloFrameEncoder(self.checkpoint, threads=settings.torch_threads, onnx_dir=onnx_dir)
        )

    def _extractor(self) -> FeatureExtractor:
        settings = self.context.settings
        encoder = self._encoder()
        key = ("feature-extractor", encoder.cache_id, str(settings.cache_dir))
        return self.context.resources.get_or_create(
            key,
            lambda: FeatureExtractor(
                encoder, FeatureCache(settings.cache_dir / "features", settings.feature_cache_max_bytes)
            ),
        )

    def _encode_rate(self) -> EncodeRate:
        initial = self.context.settings.video_encode_fps
        return self.context.resources.get_or_create(
            ("encode-rate", self._encoder().cache_id), lambda: EncodeRate(initial)
        )

    # --- frames -----------------------------------------------------------------------------
    def _frame_features(self, task: dict[str, Any], progress: Progress | None = None) -> tuple[Rows, Rows]:
        """Features and class probabilities per Label Studio frame (row n-1 = frame n), read from the feature
        cache as they are used: an hour of video never sits in memory whole."""
        path: Path = self.context.media.resolve(self.task_value(task), task.get("id"))
        extractor = self._extractor()
        encodes = not extractor.is_cached(path, self.frame_step)
        started = time.perf_counter()
        video = extractor.features(path, step=self.frame_step, progress=progress)
        if encodes:
            encoded = video.frame_count // self.frame_step
            self._encode_rate().record(encoded, time.perf_counter() - started)
        try:
            declared = resolve_frame_rate(self.object_tag.attr.get("frameRate"), task.get("data") or {})
        except ValueError as exc:
            raise TaskError(f"task {task.get('id')}: {exc}") from exc
        if rates_differ(declared, video.fps):
            logger.info(
                "task %s: <Video frameRate> is %.3f but %s runs at %.3f fps; frames are aligned by time",
                task.get("id"),
                declared,
                path.name,
                video.fps,
            )
        ls_frames = label_studio_frame_count(video.frame_count, declared, video.fps)
        index = decoded_index_for_ls_frames(ls_frames, declared, video.fps, video.frame_count)
        return video.features.take(index), video.probs.take(index)

    def task_steps(self, task: dict[str, Any]) -> TaskSteps | None:
        if not self.trainable:
            return None  # simple mode learns nothing: no frames to check, no candidate to gate
        features = np.asarray(self._frame_features(task)[0])  # annotated videos are read whole
        frames = len(features)
        return TaskSteps(
            features, lambda regions: regions_to_frame_labels(regions, self.from_name, self.labels, frames)
        )

    # --- prediction -------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return not self.trainable or super().ready

    def predict_seconds(self, task: dict[str, Any]) -> float:
        """Frames still to encode over the measured encoding rate; 0 when features are cached or when the
        prediction would stay empty anyway. Unusable media count as quick: predicting reports them."""
        if self.trainable and self.trained() is None:
            return 0.0
        try:
            path = self.context.media.resolve(self.task_value(task), task.get("id"))
            if self._extractor().is_cached(path, self.frame_step):
                return 0.0
            frames = probe_video(path).frame_count
        except TaskError:
            return 0.0
        return self._encode_rate().seconds_for(frames // self.frame_step)

    @property
    def prepares_ahead(self) -> bool:
        """Before the first training, /predict answers at once with no regions; encoding the video's frames
        meanwhile (while the annotator labels it) spares the first training that work."""
        return self.trainable and not self.ready

    def prepare(self, task: dict[str, Any]) -> None:
        self._frame_features(task)

    def predict_task(self, task: dict[str, Any], progress: Progress | None = None) -> TaskPrediction:
        if self.trainable:
            trained = self.trained()
            if trained is None:
                return TaskPrediction([])
            net, meta = trained
            features, _ = self._frame_features(task, progress)
            labels = list(meta["labels"])
            calibration = Calibration.from_meta(meta)
            probs = predict_proba(net, features, self.train_config.sequence_size)
        else:
            _, class_probs = self._frame_features(task, progress)
            labels = list(self.class_map)
            probs = np.concatenate(
                [
                    np.stack([chunk[:, ids].max(1) for ids in self.class_map.values()], axis=1)
                    for chunk in class_probs.chunks()
                ]
            )
            calibration = Calibration()  # simple mode learns nothing: the score is the mean probability
        segments = self.decode(probs)  # the calibration changes the scores, never the regions
        scaled = calibration.scale(probs, False)
        # A model trained before the label set changed still serves the labels the config keeps.
        kept = [segment for segment in segments if labels[segment.label] in self.labels]
        regions = [
            self.region(segment_value(segment, labels), calibration.region_score(segment, scaled))
            for segment in kept
        ]
        return TaskPrediction(regions, task_score(scaled, False, kept, [r["score"] for r in regions]))

    def decode(self, probs: np.ndarray) -> list[Segment]:
        """Per-frame probabilities (frames, labels) -> segments, by the decoder time series use too."""
        count = probs.shape[1]
        return decode_multilabel(
            probs,
            self.score_threshold,
            np.full(count, self.switch_cost),
            np.full(count, self.min_segment_frames),
            np.full(count, self.merge_gap_frames),
        )

    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> TimelineNet:
        if meta.get("encoder_id") != self._encoder().encoder_id:
            raise ValueError("it was trained with another frame encoder")
        net = TimelineNet(TimelineNetConfig(**meta["net_config"]))
        net.load_state_dict(state)
        return net.eval()

    # --- training ---------------------------------------------------------------------------
    def fit(
        self, tasks: list[AnnotatedTask], warm_start: bool = True, calibrate_on: Sequence[AnnotatedTask] = ()
    ) -> dict[str, Any]:
        if not self.trainable:
            return {"skipped": 'simple mode: set model_trainable="true" to train on annotations'}
        annotated = self._annotated_frames(tasks, "training")
        task_ids = list(annotated)
        sequences = list(annotated.values())
        if not sequences:
            return {"skipped": "no annotated task with a readable video"}
        if not any(target.any() for _, target in sequences):
            return {"skipped": "annotations hold no frames with labels of this control"}

        config = TimelineNetConfig(
            in_channels=sequences[0][0].shape[1],
            n_outputs=len(self.labels),
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
        )
        net, warm = self._start_net(config) if warm_start else (self._fresh_net(config), False)
        net.set_standardization([x for x, _ in sequences], trained=warm)
        train_set, val_set = holdout_split(
            [x for x, _ in sequences],
            [y for _, y in sequences],
            block=HOLDOUT_BLOCK,
            min_tasks=None,
            seed=self.train_config.seed,
        )
        metrics = fit_net(net, train_set, val_set, self.train_config.warm() if warm else self.train_config)
        held_out = list(self._annotated_frames(calibrate_on, "calibration").values())
        calibration = fit_calibration(  # on the early-stop part and the tasks held out of training
            [
                predict_proba(net, x, self.train_config.sequence_size)
                for x in [*val_set[0], *(x for x, _ in held_out)]
            ],
            [*val_set[1], *(y for _, y in held_out)],
            self.decode,
            exclusive=False,
        )
        meta = {
            "net_config": asdict(config),
            "train_config": asdict(self.train_config),
            "labels": self.labels,
            "encoder_id": self._encoder().encoder_id,
            "frame_step": self.frame_step,
            "feature_standardization": "feature_mean / feature_std buffers in the state dict",
            "task_ids": task_ids,
            "warm_start": warm,
            "metrics": metrics,
            "calibration": calibration.as_dict(),
        }
        version = self.context.store.save(net.state_dict(), meta)
        logger.info("%s: trained %s on %d tasks: %s", self.from_name, version, len(task_ids), metrics)
        return {**metrics, "tasks": len(task_ids), "warm_start": warm, "version": version}

    def _annotated_frames(
        self, tasks: Sequence[AnnotatedTask], purpose: str
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per task id, its frame features and multi-hot frame labels; unreadable videos are left out."""
        out = {}
        for task in tasks:
            try:
                features = np.asarray(self._frame_features({"id": task.task_id, "data": task.data})[0])
            except TaskError as exc:
                logger.warning("%s: task %s left out of %s: %s", self.from_name, task.task_id, purpose, exc)
                continue
            target = regions_to_frame_labels(task.regions, self.from_name, self.labels, len(features))
            out[task.task_id] = (features, target.astype(np.float32))
        return out

    def _start_net(self, config: TimelineNetConfig) -> tuple[TimelineNet, bool]:
        """The saved network when architecture, labels and encoder are unchanged, else a fresh one."""
        saved = self.context.store.load()
        net = self._fresh_net(config)
        if saved is None:
            return net, False
        state, meta = saved
        if (
            meta.get("net_config") != asdict(config)
            or meta.get("labels") != self.labels
            or meta.get("encoder_id") != self._encoder().encoder_id
        ):
            logger.info("%s: architecture, labels or encoder changed; training a fresh model", self.from_name)
            return net, False
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            logger.warning("%s: saved state does not fit (%s); training a fresh model", self.from_name, exc)
            return self._fresh_net(config), False
        return net, True

    def _fresh_net(self, config: TimelineNetConfig) -> TimelineNet:
        return new_net(lambda: TimelineNet(config), self.train_config.seed)
