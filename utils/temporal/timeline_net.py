"""A small temporal multi-label network over per-frame features (TimelineLabels' trainable mode).

Architecture (the reference's, kept as the baseline): Linear -> LayerNorm -> ReLU -> Dropout ->
bidirectional LSTM -> Linear, trained with BCE. What we add, each because the learning benchmark asked:
features standardized with training statistics (saved as buffers), positive-class weights for rare
labels, a loss mask so padding frames never count, early stopping on held-out frames, and
overlapping windows averaged at prediction so every frame sees context on both sides.
Training goes through the shared loop of `utils.temporal.training`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from utils.temporal import training
from utils.temporal.dropout import FastDropout
from utils.temporal.training import NetConfig, Sequences, TrainConfig, window_starts

# While training, the input layer (1280 -> 128 on every frame of every window, the largest part of a step) runs
# in bfloat16 where the CPU multiplies bfloat16 natively (AMX or AVX512-BF16): its forward and backward take
# 1.1 ms of a step instead of 2.7, the held-out macro-F1 stays the same (bench_timeline_learning), and the
# weights and predictions stay float32.
NATIVE_BF16 = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()

# Held-out blocks of about this many frames, every fifth one per video: every label keeps training and
# held-out frames even with one annotated task (whole held-out tasks left labels unseen in training, and the
# early stop then fired on them within a few epochs; see bench/bench_timeline_learning.py).
HOLDOUT_BLOCK = 48


@dataclass(frozen=True)
class TimelineNetConfig(NetConfig):
    fc_size: int = 128
    hidden_size: int = 32
    dropout: float = 0.2


@dataclass(frozen=True)
class TimelineTrainConfig(TrainConfig):
    epochs: int = 1000
    sequence_size: int = 16
    batch_size: int = 32
    patience: int = 20
    # A training stops once its held-out loss fell by less than this over `patience` epochs. Once the held-out
    # frames' labels are settled the loss only creeps down (a few 1e-5 an epoch: the net growing surer of what
    # it already gets right), and when any gain counted, that creep kept some trainings going for 150-200
    # epochs. Held-out videos' macro-F1 stayed the same (bench_timeline_learning), and the longest trainings
    # ran 40-50% fewer epochs (bench_fresh_model --burst, bench_timeline_learning).
    min_gain: float = 1e-3
    max_pos_weight: float = 3.0  # 20 over-predicted rare labels: bench_timeline_learning --ablations
    max_seconds: float = 600.0
    threshold: float = 0.5  # a label's probability to count as on in the held-out scores


class TimelineNet(nn.Module):
    """Per-frame label logits for a sequence of frame features."""

    def __init__(self, config: TimelineNetConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.in_channels))
        self.register_buffer("feature_std", torch.ones(config.in_channels))
        self.input = nn.Sequential(
            nn.Linear(config.in_channels, config.fc_size),
            nn.LayerNorm(config.fc_size),
            nn.ReLU(),
            FastDropout(config.dropout),
        )
        self.lstm = nn.LSTM(
            config.fc_size, config.hidden_size, config.num_layers, batch_first=True, bidirectional=True
        )
        self.output = nn.Linear(2 * config.hidden_size, config.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_standardized(self.standardize(x))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        return (x - self.feature_mean) / self.feature_std

    def training_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """`x` standardized, in the precision the training forward multiplies it in (see `NATIVE_BF16`): done
        once per training, not in every step (standardizing was a fifth of an epoch; converting to bfloat16,
        and copying twice the bytes per batch, another tenth)."""
        x = self.standardize(x)
        return x.bfloat16() if NATIVE_BF16 else x

    def from_standardized(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_frame_inputs(self.frame_inputs(x))

    def frame_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(..., fc) per-frame inputs of the LSTM from standardized (..., D) features: frame by frame, so
        overlapping windows can share them."""
        if self.training and torch.is_grad_enabled() and NATIVE_BF16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                first = self.input[0](x)
            return self.input[1:](first.float())
        return self.input(x)

    def from_frame_inputs(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(x)  # (B, T, 2H)
        return self.output(x)  # (B, T, L) logits

    def set_standardization(self, features: list[np.ndarray], trained: bool = False) -> None:
        """Mean and std over all training frames; tiny stds are floored so rare dims do not explode. A
        `trained` net (a warm start) has its input layer rewritten to compute the same as before."""
        stacked = np.concatenate(features).astype(np.float64)
        mean, std = stacked.mean(0), stacked.std(0)
        std = np.maximum(std, max(float(np.median(std)) * 1e-2, 1e-12))
        if trained:
            old = (self.feature_mean.numpy(), self.feature_std.numpy())
            training.carry_standardization(self.input[0], old, (mean, std))
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))


def _window_batch(data: Sequences, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack windows of all sequences into (N, size, D) inputs, (N, size, L) targets and a (N, size) mask
    that is zero on padding (sequences shorter than a window)."""
    xs, ys, masks = [], [], []
    for x, y in zip(*data, strict=True):
        for start in window_starts(len(x), size, stride):
            chunk = slice(start, start + size)
            n = len(x[chunk])
            pad = size - n
            xs.append(np.pad(x[chunk], ((0, pad), (0, 0))))
            ys.append(np.pad(y[chunk], ((0, pad), (0, 0))))
            masks.append(np.r_[np.ones(n), np.zeros(pad)])
    return (
        torch.as_tensor(np.stack(xs), dtype=torch.float32),
        torch.as_tensor(np.stack(ys), dtype=torch.float32),
        torch.as_tensor(np.stack(masks), dtype=torch.float32),
    )


WINDOWS_PER_BATCH = 64  # windows run at once: memory stays bounded however long the sequence


@torch.inference_mode()
def predict_proba(net: TimelineNet, features: np.ndarray, sequence_size: int) -> np.ndarray:
    """(T, L) probabilities: windows with half overlap, each frame averaged over the windows covering it.
    `features` is anything sliceable into (rows, D) arrays (an array, or rows read from disk)."""
    net.eval()
    length = len(features)
    size = min(sequence_size, length)
    starts = window_starts(length, size, max(1, size // 2))
    total: np.ndarray | None = None
    counts = np.zeros((length, 1))
    for first in range(0, len(starts), WINDOWS_PER_BATCH):
        batch = starts[first : first + WINDOWS_PER_BATCH]
        # the input layer once per frame of the windows' span, not once per window (half the work)
        span = torch.as_tensor(np.asarray(features[batch[0] : batch[-1] + size]), dtype=torch.float32)
        inputs = net.frame_inputs(net.standardize(span))
        x = torch.stack([inputs[s - batch[0] : s - batch[0] + size] for s in batch])
        probs = torch.sigmoid(net.from_frame_inputs(x)).numpy()  # (W, size, L)
        if total is None:
            total = np.zeros((length, probs.shape[2]))
        for start, window in zip(batch, probs, strict=True):
            total[start : start + size] += window
            counts[start : start + size] += 1
    assert total is not None  # window_starts gives at least one window
    return (total / counts).astype(np.float32)


@torch.inference_mode()
def evaluate(
    net: TimelineNet, data: Sequences, config: TimelineTrainConfig, pos_weight: torch.Tensor
) -> dict:
    """Frame-level scores and the mean weighted loss over `data` (features, multi-hot targets)."""
    targets = np.concatenate(data[1])
    probs = np.concatenate([predict_proba(net, x, config.sequence_size) for x in data[0]])
    logits = torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6))
    loss = training.masked_bce(
        logits, torch.as_tensor(targets, dtype=torch.float32), torch.ones(len(targets)), pos_weight
    )
    return {**training.scores(targets, probs >= config.threshold), "loss": float(loss)}


def fit(net: TimelineNet, train_set: Sequences, val_set: Sequences, config: TimelineTrainConfig) -> dict:
    """Train `net` in place on (features (T, D), targets (T, L)) sequences, keeping the weights with the
    lowest held-out loss, to `min_gain` (or those that reached the F1 and accuracy thresholds); returns the
    report."""
    torch.manual_seed(config.seed)
    x, y, mask = _window_batch(train_set, config.sequence_size, max(1, config.sequence_size // 2))
    x = net.training_inputs(x)
    pos_weight = training.positive_weights(train_set[1], config.max_pos_weight)
    optimizer = training.adamw(net, config)
    generator = torch.Generator().manual_seed(config.seed)

    def train_epoch() -> float:
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimizer.zero_grad()
            # index_select copies a step's windows (2.6 MB in float32) in 0.22 ms, x[batch] in 0.3-0.4 ms
            inputs, targets, real = (t.index_select(0, batch) for t in (x, y, mask))
            loss = training.masked_bce(net.from_standardized(inputs), targets, real, pos_weight)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        return total / len(x)

    report = training.training_loop(
        net,
        config,
        train_epoch,
        lambda: evaluate(net, val_set, config, pos_weight),
        monitor="loss",
        minimize=True,
    )
    return {
        **report,
        "train_frames": sum(len(t) for t in train_set[0]),
        "validation_frames": sum(len(v) for v in val_set[0]),
    }
