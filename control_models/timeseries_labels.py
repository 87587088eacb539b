"""`<TimeSeriesLabels>` on a `<TimeSeries>`: segments CSV / inline-JSON signals into labelled ranges and instants.

Model form. Training data decides it, and the saved metadata records it:
- "exclusive" when no sample of the training data carries two labels: softmax over background + labels,
  decoded by a Viterbi path with a switch cost, so each sample gets one label or none;
- "multilabel" when labels overlap (a region with several labels, or overlapping regions): a sigmoid per
  label (background = none on), each label decoded on its own around `model_score_threshold`.
Labels whose training regions are mostly instants (double click, start == end) are learnt on a few samples
around the instant and predicted as one instant at the peak of each detected run.

One sequence per task: windows never cross task borders. The net sees each channel twice: standardized
with the training statistics saved beside the weights, and standardized within its own task, which removes a
recording's offsets and gains (another person or sensor; see `model_input`). Early stopping uses held-out
tasks (three tasks or more) or, with fewer tasks, held-out blocks spread over every task (see
`utils.temporal.training.holdout_split`).

Tag attributes (TimelineLabels' names; the reference backend's environment variables are the defaults):
`model_classifier_epochs` (TRAIN_EPOCHS), `model_classifier_sequence_size` (SEQUENCE_SIZE, samples per
window), `model_classifier_hidden_size` (HIDDEN_SIZE), `model_classifier_num_layers` (NUM_LAYERS, GRU layers),
`model_classifier_f1_threshold` (MIN_CLASS_F1_THRESHOLD) and `model_classifier_accuracy_threshold`
(BALANCED_ACCURACY_THRESHOLD): stop once held-out macro-F1 and accuracy reach both; USE_CLASS_WEIGHTS
toggles the class-balanced loss. `model_score_threshold`: a label's per-sample probability to count as on
(multilabel, default 0.5) and, when set, the lowest segment score reported. `model_min_duration` and
`model_merge_gap` (time column units; seconds for date-time axes): shortest segment kept and longest gap
bridged; by default half the shortest typical training range.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from control_models.base import (
    AnnotatedTask,
    ControlModel,
    Progress,
    TaskPrediction,
    TaskSteps,
    fraction,
    positive,
)
from utils.service.errors import LabelConfigError, TaskError
from utils.temporal.calibration import Calibration, fit_calibration
from utils.temporal.decoder import (
    SWITCH_COST_PER_STEP,
    Segment,
    collapse_to_peak,
    decode_exclusive,
    decode_multilabel,
)
from utils.temporal.onnx_graphs import OnnxUnavailable
from utils.temporal.sequence_net import (
    SequenceNet,
    SequenceNetConfig,
    SequenceTrainConfig,
    predict_logits,
    probabilities,
)
from utils.temporal.sequence_net import fit as fit_net
from utils.temporal.sequence_onnx import MIN_SAMPLES, OnnxSequenceNet, load_checked
from utils.temporal.task_score import task_score
from utils.temporal.training import carry_standardization, copy_state, holdout_split, new_net
from utils.timeseries.reader import DEFAULT_MAX_ROWS, Series, SeriesSpec, channel_columns, read_series
from utils.timeseries.regions import RegionTargets, regions_to_targets, sample_period, segment_value
from utils.timeseries.series_cache import SeriesCache

logger = logging.getLogger(__name__)
T = TypeVar("T")

INSTANT_RADIUS = 2  # samples on each side of an instant that count as positive while training
# once the data is more than this many times what the last training from scratch saw, a fine-tuning asks for
# a full retrain to follow it (a net fine-tuned from a smaller start stays behind a new one; at 2, watch
# fine-tunings fell up to 0.18 macro-F1 behind a full retrain). All these retrains together cost at most
# WARM_MAX_GROWTH / (WARM_MAX_GROWTH - 1) = 5 times the last one.
WARM_MAX_GROWTH = 1.25


def unless_none(value: T | None, default: T) -> T:
    return default if value is None else value


def _safe_std(values: np.ndarray) -> np.ndarray:
    std = values.std(axis=0)
    return np.where(std > 1e-8, std, 1.0)


def model_input(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The channels standardized with the training statistics, beside the same channels standardized within
    the task: the first keep absolute levels, the second drop a recording's own offsets and gains (another
    person, sensor or mounting), which is what usually changes between the training and new recordings.
    Written into one float32 array: long series need no float64 temporaries."""
    channels = values.shape[1]
    out = np.empty((len(values), 2 * channels), dtype=np.float32)  # (n, 2C)
    for half, (centre, scale) in enumerate(
        ((mean, std), (values.mean(axis=0, dtype=np.float64), _safe_std(values)))
    ):
        part = out[:, half * channels : (half + 1) * channels]
        np.subtract(values, np.asarray(centre, dtype=np.float32), out=part)
        part /= np.asarray(scale, dtype=np.float32)
    return out


class TimeSeriesLabelsModel(ControlModel):
    tag: ClassVar[str] = "TimeSeriesLabels"
    object_tags: ClassVar[tuple[str, ...]] = ("TimeSeries",)

    # --- configuration ---------------------------------------------------------------------
    def configure(self) -> None:
        env = self.context.settings.timeseries
        schedule = SequenceTrainConfig()
        obj = self.object_tag.attr
        value_type = obj.get("valueType", "url") or "url"
        if value_type not in ("url", "json"):
            raise LabelConfigError(
                f"<TimeSeries name={self.to_name!r}> valueType={value_type!r} must be url or json"
            )
        self.spec = SeriesSpec(
            value_type=value_type,
            time_column=obj.get("timeColumn", "") or "",
            sep=obj.get("sep", ",") or ",",
            time_format=obj.get("timeFormat", "") or "",
            channels=channel_columns(list(self.object_tag.children or [])),
            max_rows=unless_none(env.max_rows, DEFAULT_MAX_ROWS),
        )
        self.train_config = SequenceTrainConfig(
            epochs=self.attr(
                "model_classifier_epochs", unless_none(env.epochs, schedule.epochs), positive(int)
            ),
            sequence_size=self.attr(
                "model_classifier_sequence_size",
                unless_none(env.sequence_size, schedule.sequence_size),
                positive(int),
            ),
            f1_threshold=self.attr(
                "model_classifier_f1_threshold",
                unless_none(env.f1_threshold, schedule.f1_threshold),
                fraction,
            ),
            accuracy_threshold=self.attr(
                "model_classifier_accuracy_threshold",
                unless_none(env.accuracy_threshold, schedule.accuracy_threshold),
                fraction,
            ),
            class_weights=unless_none(env.class_weights, schedule.class_weights),
        )
        self.hidden_size = self.attr(
            "model_classifier_hidden_size",
            unless_none(env.hidden_size, SequenceNetConfig.hidden_size),
            positive(int),
        )
        self.num_layers = self.attr(
            "model_classifier_num_layers",
            unless_none(env.num_layers, SequenceNetConfig.num_layers),
            positive(int),
        )
        self.score_threshold: float | None = self.attr("model_score_threshold", None, fraction)
        self.min_duration: float | None = self.attr("model_min_duration", None, positive(float))
        self.merge_gap: float | None = self.attr("model_merge_gap", None, positive(float))

    # --- data ------------------------------------------------------------------------------
    def load_series(self, task: dict[str, Any]) -> Series:
        """The task's signal, from a URL (Label Studio, cloud, local) or inline JSON."""
        value = self.task_value(task)
        task_id = task.get("id")
        if isinstance(value, dict | list):
            return read_series(value, self.spec, task_id)
        if self.spec.value_type == "json":
            try:
                return read_series(json.loads(value), self.spec, task_id)
            except (TypeError, json.JSONDecodeError) as exc:
                raise TaskError(
                    f"task {task_id}: valueType='json' but {self.value_key!r} is not JSON"
                ) from exc
        path = self.context.media.resolve(value, task_id)
        return self.context.resources.get_or_create(("series-cache",), SeriesCache).read(
            path, self.spec, task_id
        )

    def task_steps(self, task: dict[str, Any]) -> TaskSteps:
        series = self.load_series(task)
        times, axis, value_key = series.times, self.spec.axis, self.tag.lower()
        return TaskSteps(
            series.values,
            lambda regions: regions_to_targets(regions, times, self.labels, axis, value_key).targets,
        )

    # --- training --------------------------------------------------------------------------
    def fit(
        self, tasks: list[AnnotatedTask], warm_start: bool = True, calibrate_on: Sequence[AnnotatedTask] = ()
    ) -> dict[str, Any]:
        sequences, targets, stats = self._training_data(tasks)
        if not sequences:
            return {"skipped": "no task with readable data and regions of this control"}
        multi_hot = np.concatenate(targets)
        if not multi_hot.any():
            return {"skipped": "the regions cover no samples"}
        mode = "multilabel" if (multi_hot.sum(axis=1) > 1).any() else "exclusive"
        instant_labels = [
            i for i in range(len(self.labels)) if stats["instants"][i] > len(stats["lengths"][i])
        ]
        targets = [self._training_targets(t, mode, instant_labels) for t in targets]
        stacked = np.concatenate(sequences)
        mean, std = stacked.mean(axis=0), _safe_std(stacked)
        sequences = [model_input(s, mean, std) for s in sequences]
        train_set, val_set = holdout_split(sequences, targets, block=2 * self.train_config.sequence_size)
        net_config = SequenceNetConfig(
            in_channels=sequences[0].shape[1],
            n_outputs=len(self.labels) + (1 if mode == "exclusive" else 0),
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
        )
        train_config = replace(self.train_config, mode=mode)
        shape = {
            "labels": self.labels,
            "mode": mode,
            "channels": list(stats["channels"]),
            "net": asdict(net_config),
            "sequence_size": train_config.sequence_size,
            "instant_labels": instant_labels,
        }
        net = new_net(lambda: SequenceNet(net_config), train_config.seed)
        warm_from = self._warm_start(net, shape) if warm_start else None
        warm = warm_from is not None
        if warm:
            carry_standardization(net.stem[0], (warm_from["mean"], warm_from["std"]), (mean, std))
            train_config = train_config.warm()
        logger.info(
            "training %s on %d tasks (%d samples), %s mode, %s",
            self.from_name,
            len(sequences),
            len(stacked),
            mode,
            "fine-tuning the serving model" if warm else "from scratch",
        )
        report = {**fit_net(net, train_set, val_set, train_config), "warm_start": warm}
        scratch_samples, scratch_seconds = len(stacked), report["seconds"]
        if warm_from is not None:
            scratch_samples = warm_from.get("scratch_samples", 0)
            scratch_seconds = warm_from.get("scratch_seconds")  # None in models saved before it was kept
            outgrown = WARM_MAX_GROWTH * scratch_samples < len(stacked)
            # where a training from scratch is cheap, it follows every fine-tuning: the fine-tuned model
            # serves within seconds, and a full retrain's about a minute later
            follows_s = self.context.settings.timeseries.full_retrain_follows_s
            cheap = follows_s > 0 and scratch_seconds is not None and scratch_seconds <= follows_s
            if outgrown or cheap:
                report["full_retrain_due"] = True
            if outgrown:
                # asked once per growth of the data, even when the gate keeps the full retrain from serving
                scratch_samples = len(stacked)
        meta = {
            **shape,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "min_len": self._default_min_len(stats["lengths"]),
            "sample_period": stats["period"],
            "metrics": report,
            # samples of the last training from scratch (or asked for), and its seconds, carried through the
            # fine-tunings after it
            "scratch_samples": scratch_samples,
            "scratch_seconds": scratch_seconds,
        }
        calibration_set = self._with_held_out(val_set, calibrate_on, meta, instant_labels)
        meta["calibration"] = self._calibration(net, calibration_set, meta, stats["period"]).as_dict()
        version = self.context.store.save(net.state_dict(), meta)
        return {
            "version": version,
            "mode": mode,
            "tasks": len(sequences),
            "skipped_tasks": stats["skipped"],
            **report,
        }

    def _warm_start(self, net: SequenceNet, shape: dict[str, Any]) -> dict[str, Any] | None:
        """Load the serving model's weights into `net` when it has the same labels, model form, channels and
        architecture (`shape`); otherwise `net` stays fresh. Returns the serving model's metadata when its
        weights were loaded, else None (`fit` then carries the net over to the standardization of the new
        data, and asks for a full retrain to follow once the data outgrew the last one, see WARM_MAX_GROWTH:
        the fresh model serves at once, and retraining from scratch each time the data grew by that factor
        keeps the total cost linear)."""
        saved = self.context.store.load()
        if saved is None:
            return None
        state, meta = saved
        if any(meta.get(key) != value for key, value in shape.items()):
            logger.info("%s: labels, channels or model form changed; training from scratch", self.from_name)
            return None
        initial = copy_state(net)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            logger.warning("%s: saved weights do not fit (%s); training from scratch", self.from_name, exc)
            net.load_state_dict(initial)
            return None
        return meta

    def _training_data(self, tasks: list[AnnotatedTask]) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
        sequences, targets, periods = [], [], []
        lengths: dict[int, list[int]] = {i: [] for i in range(len(self.labels))}
        instants = dict.fromkeys(range(len(self.labels)), 0)
        channels: tuple[str, ...] | None = None
        skipped = 0
        for task in tasks:
            read = self._annotated_series(task, "training")
            if read is None:
                skipped += 1
                continue
            series, found = read
            if channels is not None and series.channels != channels:
                logger.warning(
                    "training skips task %s: channels %s differ from %s",
                    task.task_id,
                    series.channels,
                    channels,
                )
                skipped += 1
                continue
            channels = series.channels
            for label, values in found.range_lengths.items():
                lengths[label].extend(values)
            for label, count in found.instants.items():
                instants[label] += count
            sequences.append(series.values)
            targets.append(found.targets)
            periods.append(sample_period(series.times))
        period = float(np.median(periods)) if periods else 0.0
        stats = {
            "lengths": lengths,
            "instants": instants,
            "channels": channels or (),
            "skipped": skipped,
            "period": period,
        }
        return sequences, targets, stats

    def _annotated_series(self, task: AnnotatedTask, purpose: str) -> tuple[Series, RegionTargets] | None:
        """A task's series and the targets its regions give, or None (logged) when it cannot be read."""
        try:
            series = self.load_series({"id": task.task_id, "data": task.data})
        except TaskError as exc:
            logger.warning("%s skips task %s: %s", purpose, task.task_id, exc)
            return None
        found = regions_to_targets(task.regions, series.times, self.labels, self.spec.axis, self.tag.lower())
        return series, found

    def _with_held_out(
        self,
        val_set: tuple[list[np.ndarray], list[np.ndarray]],
        tasks: Sequence[AnnotatedTask],
        meta: dict[str, Any],
        instant_labels: list[int],
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The early-stop part pooled with `tasks` (never trained on) as net inputs and training targets, for
        the calibration; a task that cannot be read or has other channels is left out."""
        inputs, targets = list(val_set[0]), list(val_set[1])
        for task in tasks:
            read = self._annotated_series(task, "calibration")
            if read is None or list(read[0].channels) != meta["channels"]:
                continue
            series, found = read
            inputs.append(model_input(series.values, np.asarray(meta["mean"]), np.asarray(meta["std"])))
            targets.append(self._training_targets(found.targets, meta["mode"], instant_labels))
        return inputs, targets

    def _calibration(
        self, net: SequenceNet, val_set: tuple[list[np.ndarray], list[np.ndarray]], meta: dict, period: float
    ) -> Calibration:
        """The region map fitted on the held-out sequences (see `utils.temporal.calibration`)."""
        exclusive = meta["mode"] == "exclusive"
        truth = [np.eye(len(self.labels) + 1)[t][:, 1:] if exclusive else t for t in val_set[1]]
        return fit_calibration(
            [
                probabilities(predict_logits(net, x, int(meta["sequence_size"])), meta["mode"])
                for x in val_set[0]
            ],
            truth,
            lambda probs: self.decode(probs, meta, period),
            exclusive,
        )

    @staticmethod
    def _training_targets(multi_hot: np.ndarray, mode: str, instant_labels: list[int]) -> np.ndarray:
        """Widen instants to a few samples, then class ids (exclusive: 0 = background) or multi-hot floats."""
        widened = multi_hot.copy()
        for label in instant_labels:
            hits = np.flatnonzero(multi_hot[:, label])
            for offset in range(-INSTANT_RADIUS, INSTANT_RADIUS + 1):
                idx = np.clip(hits + offset, 0, len(widened) - 1)
                free = widened[idx].sum(axis=1) == 0 if mode == "exclusive" else np.ones(len(idx), dtype=bool)
                widened[idx[free], label] = 1
        if mode == "exclusive":
            return np.where(widened.any(axis=1), widened.argmax(axis=1) + 1, 0).astype(np.int64)
        return widened.astype(np.float32)

    def _default_min_len(self, lengths: dict[int, list[int]]) -> list[int]:
        """Per label: half of the 10th percentile of its training range lengths (1 for instant-only labels)."""
        return [
            max(1, int(0.5 * np.percentile(lengths[i], 10))) if lengths[i] else 1
            for i in range(len(self.labels))
        ]

    # --- prediction ------------------------------------------------------------------------
    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> SequenceNet:
        net = SequenceNet(SequenceNetConfig(**meta["net"]))
        net.load_state_dict(state)
        return net.eval()

    def predict_task(self, task: dict[str, Any], progress: Progress | None = None) -> TaskPrediction:
        trained = self.trained()
        if trained is None:
            return TaskPrediction([])
        net, meta = trained
        series = self.load_series(task)
        if list(series.channels) != list(meta["channels"]):
            raise TaskError(
                f"task {task.get('id')}: channels {list(series.channels)}, but the model was trained on "
                f"{meta['channels']}; retrain after changing the channels"
            )
        values = model_input(series.values, np.asarray(meta["mean"]), np.asarray(meta["std"]))
        exclusive = meta["mode"] == "exclusive"
        calibration = Calibration.from_meta(meta)
        runner = self._onnx_twin(net) if len(values) >= MIN_SAMPLES else None
        logits = predict_logits(net, values, int(meta["sequence_size"]), runner=runner)
        probs = probabilities(logits, meta["mode"])
        segments = self.decode(probs, meta, sample_period(series.times))  # calibration changes scores only
        scaled = calibration.scale(probs, exclusive)
        label_probs = scaled[:, 1:] if exclusive else scaled
        kept = [s for s in segments if meta["labels"][s.label] in self.labels]
        regions = [
            self.region(
                segment_value(s, series.times, meta["labels"], self.spec.axis, self.tag.lower()),
                calibration.region_score(s, label_probs),
            )
            for s in kept
        ]
        return TaskPrediction(regions, task_score(scaled, exclusive, kept, [r["score"] for r in regions]))

    def _onnx_twin(self, net: SequenceNet) -> OnnxSequenceNet | None:
        """The serving net on ONNX Runtime (built once per net, shared by the worker's requests), or None:
        PyTorch predicts when SEQUENCE_RUNTIME=torch or the twin cannot be built (logged once per net)."""
        settings = self.context.settings
        if settings.sequence_runtime != "auto":
            return None

        def build() -> OnnxSequenceNet | None:
            try:
                return load_checked(net, settings.torch_threads)
            except OnnxUnavailable as exc:
                logger.warning("%s: long series are predicted on PyTorch: %s", self.from_name, exc)
                return None

        # keyed by the net itself: a retrained model is a new net, and the key keeps the net alive meanwhile
        return self.context.resources.get_or_create(("sequence-onnx", net, settings.torch_threads), build)

    def decode(self, probs: np.ndarray, meta: dict[str, Any], period: float) -> list[Segment]:
        """Per-sample probabilities -> label segments (label indices into meta['labels'])."""
        instant = np.isin(np.arange(len(meta["min_len"])), meta["instant_labels"])
        min_len = np.asarray(meta["min_len"], dtype=np.int64)
        if self.min_duration is not None:
            min_len = np.where(instant, 1, self._to_samples(self.min_duration, period))
        ranged = min_len[~instant]
        gap = int(ranged.min()) if len(ranged) else 1
        if self.merge_gap is not None:
            gap = self._to_samples(self.merge_gap, period)
        if meta["mode"] == "exclusive":
            class_min = np.concatenate(([gap], min_len))
            coded = decode_exclusive(probs, SWITCH_COST_PER_STEP * class_min, class_min)
            found = [Segment(s.label - 1, s.start, s.end, s.score) for s in coded]
            label_probs = probs[:, 1:]
        else:
            threshold = 0.5 if self.score_threshold is None else self.score_threshold
            found = decode_multilabel(
                probs, threshold, SWITCH_COST_PER_STEP * min_len, min_len, np.full_like(min_len, gap)
            )
            label_probs = probs
        instant_set = set(meta["instant_labels"])
        found = [collapse_to_peak(s, label_probs) if s.label in instant_set else s for s in found]
        if self.score_threshold is not None:
            found = [s for s in found if s.score >= self.score_threshold]
        return sorted(found, key=lambda s: (s.start, s.label))

    def _to_samples(self, duration: float, period: float) -> int:
        """A duration in time column units (seconds on date-time axes, whose values are ms) as samples."""
        if self.spec.axis.is_date:
            duration *= 1000.0
        return max(1, int(round(duration / period))) if period > 0 else 1
