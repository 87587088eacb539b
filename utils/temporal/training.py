"""The one training vocabulary of the temporal nets: config base classes, the held-out split, windows, the
metrics, the weighted masked loss and the one training loop (nanoGPT-style: data -> forward -> loss -> backward
-> step -> held-out eval, which decides when to stop and which weights to keep).

The fit contract, scikit-learn style: hyperparameters live in frozen dataclasses (`NetConfig` for the
architecture, `TrainConfig` for the schedule); building a net does no training; `fit(net, train_set, val_set,
config)` sets the learned state in place and returns a report; `predict_proba`-style functions only read it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Self, TypeVar

import numpy as np
import torch

# torch.optim imports torch._dynamo (sympy with it) when the first optimizer of a process is built: 1.1-1.2 s
# that the first training after a start, and every training in an RQ work horse, would otherwise wait for.
# Imported with the nets instead, it is paid once at start, and forked work horses inherit it.
import torch._dynamo  # noqa: F401
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

NetT = TypeVar("NetT", bound=nn.Module)
Sequences = tuple[list[np.ndarray], list[np.ndarray]]  # (inputs (T, C) per sequence, targets per sequence)


@dataclass(frozen=True)
class NetConfig:
    """Architecture: changing any field starts a fresh model."""

    in_channels: int
    n_outputs: int
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.15


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule; none of it changes the architecture. Nets subclass it to change defaults or add
    their own fields."""

    epochs: int = 60
    sequence_size: int = 512  # steps per training window
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10  # held-out checks without a gain before stopping
    min_epochs: int = 0
    min_gain: float = 0.0  # what counts as a gain of the monitored score
    f1_threshold: float = 0.95  # stop once held-out macro-F1 and accuracy reach both thresholds
    accuracy_threshold: float = 1.0
    max_pos_weight: float = 50.0  # bound on a rare label's weight in the loss
    average_top: int = 1  # >1: average the weights of the best few held-out epochs when that does not hurt
    max_seconds: float = 1800.0
    seed: int = 0
    # a warm start (fine-tuning the serving model on the newest annotations) needs only a few epochs
    warm_epochs: int = 12
    warm_patience: int = 3
    warm_learning_rate_scale: float = 0.5
    # the net's weights before the first epoch compete with the epochs' for the best held-out score (a
    # fine-tuning then never serves weights that score worse than those it started from)
    keep_start: bool = False

    def warm(self) -> Self:
        """The schedule for fine-tuning a trained net: fewer epochs, a smaller step, a quick plateau stop."""
        return replace(
            self,
            epochs=min(self.epochs, self.warm_epochs),
            min_epochs=0,
            patience=min(self.patience, self.warm_patience),
            learning_rate=self.learning_rate * self.warm_learning_rate_scale,
        )


# --- data ------------------------------------------------------------------------------------------------
def window_starts(length: int, size: int, step: int) -> list[int]:
    """Window starts covering [0, length) with windows of `size` (one shorter window if length < size)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def holdout_split(
    sequences: list[np.ndarray],
    targets: list[np.ndarray],
    block: int,
    min_tasks: int | None = 3,
    every: int = 5,
    seed: int = 0,
) -> tuple[Sequences, Sequences]:
    """Training and held-out data for early stopping. With `min_tasks` sequences or more, a fifth of the
    sequences is held out whole (an honest check on unseen recordings). Otherwise every sequence is cut into
    blocks of about `block` steps (5 to 20 of them) and every `every`-th block, from a random phase, is held
    out, so each recording still trains on most of its parts and every label keeps held-out steps; the
    training blocks between held-out ones become separate pieces that no window spans."""
    rng = np.random.default_rng(seed)
    if min_tasks is not None and len(sequences) >= min_tasks:
        order = rng.permutation(len(sequences)).tolist()
        n_val = max(1, round(len(sequences) / every))
        val, kept = order[:n_val], sorted(order[n_val:])
        return (
            ([sequences[i] for i in kept], [targets[i] for i in kept]),
            ([sequences[i] for i in val], [targets[i] for i in val]),
        )
    train_x, train_y, val_x, val_y = [], [], [], []
    for x, y in zip(sequences, targets, strict=True):
        n_blocks = int(np.clip(len(x) // block, every, 4 * every))
        bounds = np.linspace(0, len(x), n_blocks + 1).astype(int)
        held = set(range(int(rng.integers(0, every)), n_blocks, every))
        piece_start = 0
        for number in range(n_blocks):
            lo, hi = bounds[number], bounds[number + 1]
            if number in held:
                if hi > lo:
                    val_x.append(x[lo:hi])
                    val_y.append(y[lo:hi])
                if lo > piece_start:
                    train_x.append(x[piece_start:lo])
                    train_y.append(y[piece_start:lo])
                piece_start = hi
        if len(x) > piece_start:
            train_x.append(x[piece_start:])
            train_y.append(y[piece_start:])
    if not val_x:  # sequences of a few steps: nothing to hold out, so stop on the training data
        return (train_x, train_y), (train_x, train_y)
    if not train_x:  # the held-out blocks took every step: train and stop on the same data
        return (val_x, val_y), (val_x, val_y)
    return (train_x, train_y), (val_x, val_y)


# --- metrics and loss ------------------------------------------------------------------------------------
def scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Per-step accuracy (every label right) and macro-F1 over the labels that occur in the truth or the
    prediction, for 0/1 arrays (steps, labels); one-hot classes work the same."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = (truth & predicted).sum(0)
    occurring = truth.any(0) | predicted.any(0)
    f1 = 2 * tp[occurring] / (truth.sum(0) + predicted.sum(0))[occurring]
    return {
        "accuracy": float(np.all(truth == predicted, axis=1).mean()) if len(truth) else 1.0,
        "macro_f1": float(f1.mean()) if occurring.any() else 1.0,
    }


def positive_weights(targets: list[np.ndarray], max_weight: float) -> torch.Tensor:
    """Negative/positive ratio per label of multi-hot targets, so rare labels count as much as common ones
    (between 1 and `max_weight`; 1 for labels without positives)."""
    stacked = np.concatenate(targets)
    positives = stacked.sum(0).astype(np.float64)
    ratio = np.where(positives > 0, (len(stacked) - positives) / np.maximum(positives, 1), 1.0)
    return torch.as_tensor(np.clip(ratio, 1.0, max_weight), dtype=torch.float32)


def masked_bce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, pos_weight: torch.Tensor | None
) -> torch.Tensor:
    """Binary cross-entropy averaged over real steps only: padding never teaches "no label"."""
    per_item = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    return per_item[mask.bool()].mean()


def adamw(net: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """The nets' optimizer: AdamW in one fused kernel per step. It is the same update, to float rounding, as
    the loop over parameters PyTorch picks on CPU; measured on 2 cores, a time-series step took 5% less and a
    video epoch about 9% less."""
    return torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )


def new_net(build: Callable[[], NetT], seed: int) -> NetT:
    """A fresh, untrained net whose initial weights depend on `seed` only."""
    torch.manual_seed(seed)
    return build()


@torch.no_grad()
def carry_standardization(
    layer: nn.Linear | nn.Conv1d,
    old: tuple[np.ndarray, np.ndarray],
    new: tuple[np.ndarray, np.ndarray],
) -> None:
    """Rewrite a trained first layer in place so that on inputs standardized with the `new` (mean, std) it
    computes what it computed on inputs standardized with the `old` ones; only its first len(mean) input
    channels are standardized so. A warm start can then take the statistics of today's data without first
    undoing what the net learnt (a convolution's zero padding sees the shift at the edges only)."""
    (old_mean, old_std), (new_mean, new_std) = (
        tuple(np.asarray(v, np.float64) for v in pair) for pair in (old, new)
    )
    weight = layer.weight[:, : len(old_mean)]  # (out, channels, *kernel): a view, changed in place
    per_channel = (1, len(old_mean), *[1] * (weight.dim() - 2))
    shift = torch.as_tensor((new_mean - old_mean) / old_std, dtype=torch.float32).view(per_channel)
    if layer.bias is not None:
        layer.bias += (weight * shift).flatten(1).sum(1)
    weight *= torch.as_tensor(new_std / old_std, dtype=torch.float32).view(per_channel)


def copy_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the weights, to keep the best epoch while training goes on."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# --- stopping a training whose result is no longer wanted -------------------------------------------------
class TrainingStopped(Exception):
    """Raised between epochs when the training's stop condition holds: its result is no longer wanted."""


_stop_condition: ContextVar[Callable[[], bool] | None] = ContextVar("stop_condition", default=None)


@contextmanager
def stop_when(condition: Callable[[], bool] | None) -> Iterator[None]:
    """Trainings run within this scope (in this thread) stop at their next epoch once `condition()` holds.
    A scope, not a parameter of every `fit`: whoever schedules a training knows when its result stops being
    wanted (newer data arrived), while the layers between it and the loop do not need to."""
    token = _stop_condition.set(condition)
    try:
        yield
    finally:
        _stop_condition.reset(token)


def check_stop() -> None:
    """Raise `TrainingStopped` when the current scope's stop condition holds; training loops call it."""
    condition = _stop_condition.get()
    if condition is not None and condition():
        raise TrainingStopped("stopped: its result is no longer wanted")


# --- the loop --------------------------------------------------------------------------------------------
def training_loop(
    net: nn.Module,
    config: TrainConfig,
    train_epoch: Callable[[], float],
    evaluate: Callable[[], dict[str, float]],
    monitor: str = "macro_f1",
    minimize: bool = False,
    after_eval: Callable[[dict[str, float]], None] | None = None,
) -> dict:
    """Run `train_epoch()` (one pass of optimizer steps, returning the mean training loss) and the held-out
    `evaluate()` (a dict with `accuracy`, `macro_f1` and `monitor`) per epoch; keep the weights with the best
    `monitor` (or the average of the best few, `average_top`; with `keep_start`, the weights before the first
    epoch count as epoch 0); stop when macro-F1 and accuracy reach their thresholds, after `patience` epochs
    without a gain (not before `min_epochs`), at `epochs` or `max_seconds`; raise `TrainingStopped` between
    epochs when the scope's stop condition holds (see `stop_when`)."""
    started = time.monotonic()
    sign = -1.0 if minimize else 1.0
    best_value, best_state, best_metrics, stale = -math.inf, copy_state(net), {}, 0
    top: list[tuple[float, int, dict[str, torch.Tensor]]] = []
    if config.keep_start:
        net.eval()
        best_metrics = {**evaluate(), "epoch": 0}
        best_value = sign * best_metrics[monitor]
        top = [(best_value, 0, best_state)]
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        check_stop()
        net.train()
        train_loss = train_epoch()
        metrics = {**evaluate(), "epoch": epoch, "train_loss": round(train_loss, 5)}
        if after_eval is not None:
            after_eval(metrics)
        value = sign * metrics[monitor]
        reached = (
            metrics["macro_f1"] >= config.f1_threshold and metrics["accuracy"] >= config.accuracy_threshold
        )
        if config.average_top > 1:
            top = sorted([*top, (value, epoch, copy_state(net))], key=lambda t: -t[0])[: config.average_top]
        if value > best_value + config.min_gain or reached:
            best_value, best_state, best_metrics, stale = value, copy_state(net), metrics, 0
        else:
            stale += 1
        logger.debug("epoch %d: %s", epoch, metrics)
        if reached or (stale >= config.patience and epoch >= config.min_epochs):
            break
        if time.monotonic() - started > config.max_seconds:
            logger.warning("training stopped by its time budget after %d epochs", epoch)
            break
    net.load_state_dict(best_state)
    report = {"best": best_metrics, "epochs": epoch, "averaged": False}
    if len(top) > 1:
        net.load_state_dict({k: torch.stack([t[2][k] for t in top]).mean(0) for k in best_state})
        averaged = evaluate()
        if sign * averaged[monitor] >= best_value - 0.01:  # a flatter optimum generalizes better
            report.update(best={**best_metrics, **averaged}, averaged=True)
        else:
            net.load_state_dict(best_state)
    net.eval()
    return {**report, "seconds": round(time.monotonic() - started, 1)}
