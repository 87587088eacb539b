"""A small temporal multi-label network over per-frame features, with sklearn-style fit / predict_proba.

Architecture (the reference's, kept as the baseline): Linear -> LayerNorm -> ReLU -> Dropout ->
bidirectional LSTM -> Linear, trained with BCE. What we add, each because the learning benchmark asked:
features standardized with training statistics (saved as buffers), positive-class weights for rare
labels, a loss mask so padding frames never count, early stopping on held-out frames, and
overlapping windows averaged at prediction so every frame sees context on both sides.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from utils.temporal.sequence_net import copy_state, window_starts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetConfig:
    """Architecture: changing any field starts a fresh model."""

    input_size: int
    output_size: int
    fc_size: int = 128
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule; none of it changes the architecture."""

    epochs: int = 1000
    sequence_size: int = 16
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 20
    eval_every: int = 1
    f1_threshold: float = 0.95
    accuracy_threshold: float = 1.0
    max_pos_weight: float = 3.0  # 20 over-predicted rare labels: bench_timeline_learning --ablations
    validation_fraction: float = 0.2
    validation_chunk: int = 48
    seed: int = 0
    time_budget_s: float = 600.0


class TimelineNet(nn.Module):
    """Per-frame label logits for a sequence of frame features."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_size))
        self.register_buffer("feature_std", torch.ones(config.input_size))
        self.input = nn.Sequential(
            nn.Linear(config.input_size, config.fc_size),
            nn.LayerNorm(config.fc_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        self.lstm = nn.LSTM(
            config.fc_size, config.hidden_size, config.num_layers, batch_first=True, bidirectional=True
        )
        self.output = nn.Linear(2 * config.hidden_size, config.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.feature_mean) / self.feature_std  # (B, T, D)
        x = self.input(x)  # (B, T, fc)
        x, _ = self.lstm(x)  # (B, T, 2H)
        return self.output(x)  # (B, T, L) logits

    def set_standardization(self, features: list[np.ndarray]) -> None:
        """Mean and std over all training frames; tiny stds are floored so rare dims do not explode."""
        stacked = np.concatenate(features).astype(np.float64)
        mean, std = stacked.mean(0), stacked.std(0)
        floor = max(float(np.median(std)) * 1e-2, 1e-12)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(np.maximum(std, floor), dtype=torch.float32))


def _window_batch(
    sequences: list[tuple[np.ndarray, np.ndarray]], size: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack windows of all sequences into (N, size, D) inputs, (N, size, L) targets and a (N, size) mask
    that is zero on padding (sequences shorter than a window)."""
    xs, ys, masks = [], [], []
    for x, y in sequences:
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


def macro_f1(target: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over labels that occur in target or prediction (absent-and-unpredicted labels are skipped)."""
    scores = []
    for column in range(target.shape[1]):
        t, p = target[:, column].astype(bool), predicted[:, column].astype(bool)
        if not t.any() and not p.any():
            continue
        tp = np.sum(t & p)
        scores.append(2 * tp / (t.sum() + p.sum()))
    return float(np.mean(scores)) if scores else 1.0


def split_validation(
    sequences: list[tuple[np.ndarray, np.ndarray]], fraction: float, chunk: int, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """Hold out every k-th chunk of every sequence (k = 1 / fraction, random phase per sequence).

    Chunks interleave, so every label keeps training and validation frames even with one annotated
    task; holding out whole tasks or one long block instead left labels unseen in training, and the
    early stop then fired on them within a few epochs (see bench/bench_timeline_learning.py).
    """
    if fraction <= 0:
        return sequences, []
    every = max(2, round(1 / fraction))
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for x, y in sequences:
        phase = int(rng.integers(every))
        for number, start in enumerate(range(0, len(x), chunk)):
            part = (x[start : start + chunk], y[start : start + chunk])
            (valid if number % every == phase else train).append(part)
    if not train:
        return valid, []
    return train, valid


def pos_weights(targets: list[np.ndarray], max_weight: float) -> torch.Tensor:
    """neg/pos per label, so rare labels count as much as common ones (bounded, 1 for absent labels)."""
    stacked = np.concatenate(targets)
    pos = stacked.sum(0)
    neg = len(stacked) - pos
    weight = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.as_tensor(np.clip(weight, 1.0, max_weight), dtype=torch.float32)


@torch.inference_mode()
def predict_proba(net: TimelineNet, features: np.ndarray, sequence_size: int) -> np.ndarray:
    """(T, L) probabilities: windows with half overlap, each frame averaged over the windows covering it."""
    net.eval()
    length = len(features)
    size = min(sequence_size, length)
    starts = window_starts(length, size, max(1, size // 2))
    x = torch.as_tensor(np.stack([features[s : s + size] for s in starts]), dtype=torch.float32)
    probs = torch.sigmoid(net(x)).numpy()  # (W, size, L)
    total = np.zeros((length, probs.shape[2]))
    counts = np.zeros((length, 1))
    for start, window in zip(starts, probs, strict=True):
        total[start : start + size] += window
        counts[start : start + size] += 1
    return (total / counts).astype(np.float32)


def fit(
    net: TimelineNet,
    sequences: list[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Train `net` in place on (features (T, D), targets (T, L)) sequences; returns metrics.

    Stops when held-out macro-F1 reaches `f1_threshold` and accuracy `accuracy_threshold`, when the
    held-out loss has not improved for `patience` epochs, or at `epochs`; the state with the lowest
    held-out loss (or the one that reached the thresholds) is kept.
    """
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    train, valid = split_validation(
        sequences, config.validation_fraction, config.validation_chunk, config.seed
    )
    x, y, mask = _window_batch(train, config.sequence_size, max(1, config.sequence_size // 2))
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=pos_weights([t for _, t in train], config.max_pos_weight), reduction="none"
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)

    best = {"loss": math.inf, "f1": 0.0, "accuracy": 0.0, "epoch": 0}
    best_state = copy_state(net)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimizer.zero_grad()
            loss = _masked_loss(criterion, net(x[batch]), y[batch], mask[batch])
            loss.backward()
            optimizer.step()
        if epoch % config.eval_every:
            continue
        scores = evaluate(net, valid or train, config.sequence_size, threshold, criterion)
        reached = scores["f1"] >= config.f1_threshold and scores["accuracy"] >= config.accuracy_threshold
        if scores["loss"] < best["loss"] or reached:
            best, best_state = {**scores, "epoch": epoch}, copy_state(net)
        if reached:
            break
        if epoch - best["epoch"] >= config.patience:
            break
        if time.perf_counter() - started > config.time_budget_s:
            logger.warning("training stopped by its time budget after %d epochs", epoch)
            break
    net.load_state_dict(best_state)
    net.eval()
    return {
        "epochs_run": epoch,
        "best_epoch": best["epoch"],
        "validation_loss": round(best["loss"], 4),
        "validation_f1": round(best["f1"], 4),
        "validation_accuracy": round(best["accuracy"], 4),
        "train_frames": sum(len(t[0]) for t in train),
        "validation_frames": int(sum(len(v[0]) for v in valid)),
        "train_seconds": round(time.perf_counter() - started, 2),
    }


def _masked_loss(
    criterion: nn.Module, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean loss over real frames only: padding never teaches "no label"."""
    per_frame = criterion(logits, target).mean(-1)  # (B, T)
    return (per_frame * mask).sum() / mask.sum().clamp(min=1)


@torch.inference_mode()
def evaluate(
    net: TimelineNet,
    sequences: list[tuple[np.ndarray, np.ndarray]],
    sequence_size: int,
    threshold: float,
    criterion: nn.Module | None = None,
) -> dict[str, float]:
    """Frame-level macro-F1, exact-match accuracy and (with `criterion`) mean loss over `sequences`."""
    targets = np.concatenate([y for _, y in sequences])
    probs = np.concatenate([predict_proba(net, x, sequence_size) for x, _ in sequences])
    predicted = probs >= threshold
    scores = {
        "f1": macro_f1(targets, predicted),
        "accuracy": float(np.mean(np.all(predicted == targets.astype(bool), axis=1))),
    }
    if criterion is not None:
        logits = torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6))
        scores["loss"] = float(criterion(logits, torch.as_tensor(targets, dtype=torch.float32)).mean())
    return scores
