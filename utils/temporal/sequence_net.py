"""A per-sample sequence labeller for multichannel signals (TimeSeriesLabels), trained by the shared loop of
`utils.temporal.training`.

Network: a convolutional stem at full rate, two stride-2 convolutions (1/4 rate), dilated residual
convolutions (a temporal conv net) and a bidirectional GRU for long context at 1/4 rate, upsampled back and
joined with the full-rate stem features, then a per-sample linear head.
Two output forms: "exclusive" (softmax over background + labels, class-balanced cross-entropy) and
"multilabel" (one sigmoid per label, balanced binary cross-entropy; background = no label on).
Training draws random windows that never cross sequence borders (time-warped by up to ±15%, with channel
gain/offset jitter and noise), as many per epoch as cover the training data about 4 times (within bounds, so
training time follows the data), halves the step size when held-out macro-F1 stalls, stops early on held-out
sequences and keeps the average of the best held-out states. Prediction averages overlapping windows with a
taper.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.temporal.dropout import FastDropout
from utils.temporal.gru_training import bidirectional_gru
from utils.temporal.training import (
    NetConfig,
    Sequences,
    TrainConfig,
    adamw,
    masked_bce,
    positive_weights,
    scores,
    training_loop,
    window_starts,
)

logger = logging.getLogger(__name__)

DOWNSAMPLE = 4


@dataclass(frozen=True)
class SequenceNetConfig(NetConfig):
    conv_blocks: int = 4


@dataclass(frozen=True)
class SequenceTrainConfig(TrainConfig):
    mode: str = "exclusive"  # or "multilabel"
    min_epochs: int = 15
    # stop after 6 held-out checks without a gain, halving the step size after 3: against 10 checks, the
    # same macro-F1 on held-out subjects (within 0.001; watch 4 runs, basicmotions 4 seeds) after 15-50%
    # fewer epochs (watch 21-29 against 25-33, basicmotions 15-28 against 15-59)
    patience: int = 6
    lr_patience: int = 3
    min_gain: float = 1e-4
    # windows per epoch cover the training samples about `passes_per_epoch` times, within the bounds (see
    # `epoch_windows`): tiny projects still take enough steps per epoch, large ones are checked often
    passes_per_epoch: float = 4.0
    min_windows: int = 128
    max_windows: int = 384
    time_warp: float = 0.15  # training windows are resampled from spans up to this fraction longer/shorter
    class_weights: bool = True
    average_top: int = 5
    warm_learning_rate_scale: float = 0.2

    def warm(self) -> SequenceTrainConfig:
        """Fine-tuning also checks the held-out data twice as often: the plateau shows after fewer windows."""
        short = super().warm()
        return replace(
            short,
            max_windows=max(short.min_windows, short.max_windows // 2),
            keep_start=True,
            lr_patience=min(short.lr_patience, 1),
        )


class ResidualBlock(nn.Module):
    """Dilated conv -> norm -> GELU -> dropout, added to its input."""

    def __init__(self, width: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size=5, padding=2 * dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, width)
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T)
        return x + self.drop(F.gelu(self.norm(self.conv(x))))


def _upsampling_weights() -> torch.Tensor:
    """(6, 3): weights of the coarse samples j-1, j, j+1 in the fine sample 4j+r for r = -1..4, as
    `F.interpolate(..., mode="linear", align_corners=False)` upsamples by DOWNSAMPLE (4)."""
    weights = torch.zeros(DOWNSAMPLE + 2, 3, dtype=torch.float64)
    for row, r in enumerate(range(-1, DOWNSAMPLE + 1)):
        position = (r + 0.5) / DOWNSAMPLE - 0.5
        left = math.floor(position)
        weights[row, left + 1] = 1 - (position - left)
        weights[row, left + 2] = position - left
    return weights


class SequenceNet(nn.Module):
    """Per-sample logits (B, T, outputs) for signals (B, T, channels)."""

    def __init__(self, config: SequenceNetConfig):
        super().__init__()
        width = config.hidden_size
        self.stem = nn.Sequential(nn.Conv1d(config.in_channels, width, 5, padding=2), nn.GELU())
        self.down = nn.Sequential(
            nn.Conv1d(width, width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(width, width, 4, stride=2, padding=1),
            nn.GELU(),
        )
        self.blocks = nn.Sequential(
            *[ResidualBlock(width, 2**i, config.dropout) for i in range(config.conv_blocks)]
        )
        self.gru = nn.GRU(width, width, num_layers=config.num_layers, batch_first=True, bidirectional=True)
        # over [fine, context upsampled to the fine rate], computed at the coarse rate (see `merged`)
        self.merge = nn.Conv1d(3 * width, width, 3, padding=1)
        self.drop = FastDropout(config.dropout)
        self.head = nn.Conv1d(width, config.n_outputs, 1)
        # (4H, 3, 3), group h = merge output channel h: how each fine phase mixes 3 coarse taps (`merged`)
        phases = torch.stack([_upsampling_weights()[r : r + 3] for r in range(DOWNSAMPLE)])
        self.register_buffer("phases", phases.float().repeat(width, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.fine(x)
        return self.logits(self.merged(fine, self.context(self.coarse(fine))), x.shape[1])

    # forward in stages, so that prediction can run the GRU over many windows at once (see `predict_logits`)
    def fine(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, H, T'), T' a multiple of DOWNSAMPLE
        length = x.shape[1]
        padded = math.ceil(length / DOWNSAMPLE) * DOWNSAMPLE
        return self.stem(F.pad(x.transpose(1, 2), (0, padded - length), mode="replicate"))

    def coarse(self, fine: torch.Tensor) -> torch.Tensor:  # (B, H, T') -> (B, H, T'/4)
        return self.blocks(self.down(fine))

    def context(self, coarse: torch.Tensor) -> torch.Tensor:  # (B, H, T'/4) -> (B, 2H, T'/4)
        steps = coarse.transpose(1, 2)
        # with gradients (training), the same GRU with its backward written out: PyTorch's records each
        # timestep's operations for autograd and takes about twice as long (bench_train_step)
        states = bidirectional_gru(self.gru, steps) if torch.is_grad_enabled() else self.gru(steps)[0]
        return states.transpose(1, 2)

    def merged(self, fine: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # -> (B, H, T')
        """`merge` over [fine, context upsampled to the fine rate], without upsampling the context: the merge
        is linear, so its context part is projected at the coarse rate (3 taps x H channels from 2H), and each
        of the 4 fine phases is a fixed 3-tap mix of those (a grouped convolution). The same numbers as
        upsampling, concatenating and merging at the fine rate (to float rounding), for about half the cost."""
        width = self.merge.out_channels
        weight = self.merge.weight
        # projection output channel h*3+k: tap k (offset k-1) of the merge for output channel h
        project = weight[:, width:].permute(0, 2, 1).reshape(3 * width, -1, 1)
        projected = F.conv1d(context, project)  # (B, 3H, T'/4)
        # replicate padding at the coarse rate = the clamping of the upsampling at both ends
        phased = F.conv1d(F.pad(projected, (1, 1), mode="replicate"), self.phases, groups=width)
        batch, _, steps = phased.shape  # (B, 4H, T'/4) -> (B, H, T'), sample 4j+r from channel h*4+r
        merged = phased.view(batch, width, DOWNSAMPLE, steps).transpose(2, 3).reshape(batch, width, -1)
        # the merge convolution pads the context with zeros, not with its end values
        merged[:, :, 0] -= projected[:, 0::3, 0]
        merged[:, :, -1] -= projected[:, 2::3, -1]
        return merged + F.conv1d(fine, weight[:, :width], self.merge.bias, padding=1)

    def logits(self, merged: torch.Tensor, length: int) -> torch.Tensor:  # (B, H, T') -> (B, T, outputs)
        return self.head(self.drop(F.gelu(merged)))[:, :, :length].transpose(1, 2)


# --- prediction ------------------------------------------------------------------------------------------
def _taper(size: int, overlap: int) -> np.ndarray:
    """Window weights that ramp up over the first and down over the last `overlap` samples (never zero),
    so neighbouring windows cross-fade where they overlap and each sample trusts the window it is deepest in."""
    ramp = np.minimum(np.arange(1, size + 1), np.arange(size, 0, -1)) / (overlap + 1)
    return np.clip(ramp, 0.05, 1.0).astype(np.float32)


PREDICT_WINDOW_FACTOR = 4  # prediction windows are this many training windows long


GRU_SAMPLES = 2**17  # prediction runs the GRU over this many samples' windows at once
# windows a `WindowRunner` takes per call: small calls keep memory low and both cores busy (ONNX Runtime's
# GRU costs the same per window for 8 windows as for 64)
RUNNER_WINDOWS = 8
RUNNER_STACKS = 8  # stacks of `RUNNER_WINDOWS` per runner call: keeps up to 8 threads busy

# windows (G, span, C) -> their logits (G, span, outputs), for several window stacks side by side
WindowRunner = Callable[[list[np.ndarray]], list[np.ndarray]]


@torch.inference_mode()
def predict_logits(
    net: SequenceNet,
    values: np.ndarray,
    size: int,
    batch_size: int = 32,
    runner: WindowRunner | None = None,
) -> np.ndarray:
    """Per-sample logits (n, outputs) of a whole sequence. Windows are `PREDICT_WINDOW_FACTOR` training
    windows (`size`) long and overlap by half a training window, cross-faded: long series cost little more
    than one pass over their samples (half-overlapping training-size windows cost two), with context on both
    sides of every junction. On PyTorch the convolutions take `batch_size` windows at a time (64k samples
    for the defaults) and the GRU the windows of `GRU_SAMPLES` samples at once, since its cost is one small
    step after another, which a few windows cannot keep busy (on a busy machine each step also waits for the
    other threads). A `runner` (ONNX Runtime, see `utils.temporal.sequence_onnx`) takes stacks of
    `RUNNER_WINDOWS` windows instead, `RUNNER_STACKS` at a time (side by side on its threads)."""
    net.eval()
    length = len(values)
    span = min(size * PREDICT_WINDOW_FACTOR, length)
    overlap = min(max(1, size // 2), span - 1) if span < length else 0
    starts = window_starts(length, span, span - overlap)
    weights = _taper(span, overlap)[:, None]
    total = np.zeros((length, net.head.out_channels), dtype=np.float32)
    norm = np.zeros((length, 1), dtype=np.float32)
    values = np.ascontiguousarray(values, dtype=np.float32)
    if runner is None:
        group = max(batch_size, GRU_SAMPLES // span)
        calls = (
            _torch_windows(net, batch_size, window_stacks)
            for window_stacks in _stacks(values, starts, span, group, 1)
        )
    else:
        calls = (
            runner(window_stacks)
            for window_stacks in _stacks(values, starts, span, RUNNER_WINDOWS, RUNNER_STACKS)
        )
    done = 0
    for outputs in calls:
        for out in outputs:
            for s, logits in zip(starts[done : done + len(out)], out, strict=True):
                total[s : s + span] += logits * weights
                norm[s : s + span] += weights
            done += len(out)
    total /= norm
    return total


def _stacks(
    values: np.ndarray, starts: list[int], span: int, per_stack: int, stacks: int
) -> Iterator[list[np.ndarray]]:
    """Lists of up to `stacks` window stacks (up to `per_stack`, span, C) in the order of `starts`: a bounded
    number of windows is copied out at any time."""
    per_call = per_stack * stacks
    for c in range(0, len(starts), per_call):
        chunk = starts[c : c + per_call]
        yield [
            np.stack([values[s : s + span] for s in chunk[i : i + per_stack]])
            for i in range(0, len(chunk), per_stack)
        ]


def _torch_windows(net: SequenceNet, batch_size: int, stacks: list[np.ndarray]) -> list[np.ndarray]:
    """The logits of each window stack on PyTorch, in stages: the GRU over the whole stack at once."""
    outputs = []
    for stack in stacks:
        windows = torch.from_numpy(stack)  # (G, span, C)
        fine = [net.fine(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)]
        context = net.context(torch.cat([net.coarse(f) for f in fine])).split(batch_size)  # (G, 2H, span'/4)
        outputs.append(
            np.concatenate(
                [
                    net.logits(net.merged(f, c), stack.shape[1]).numpy()
                    for f, c in zip(fine, context, strict=True)
                ]
            )
        )
    return outputs


def probabilities(logits: np.ndarray, mode: str) -> np.ndarray:
    tensor = torch.from_numpy(logits)
    return (torch.softmax(tensor, dim=-1) if mode == "exclusive" else torch.sigmoid(tensor)).numpy()


# --- training ------------------------------------------------------------------------------------------
def epoch_windows(train_samples: int, config: SequenceTrainConfig) -> int:
    """Windows per epoch in proportion to the training data, so a small project trains in seconds and a
    large one still sees all its data between held-out checks."""
    wanted = round(config.passes_per_epoch * train_samples / config.sequence_size)
    return int(np.clip(wanted, config.min_windows, config.max_windows))


def _sample_windows(
    sequences: list[np.ndarray],
    targets: list[np.ndarray],
    size: int,
    count: int,
    warp: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` windows (count, size, C) at random places, each inside one sequence (pieces are chosen in
    proportion to their length), with targets and a validity mask; short pieces are padded and masked.
    Each window is resampled from a span up to `warp` (a fraction) longer or shorter than `size`: people
    and machines do the same thing at different speeds."""
    lengths = np.array([len(x) for x in sequences], dtype=np.float64)
    picks = rng.choice(len(sequences), size=count, p=lengths / lengths.sum())
    xs, ys, ms = [], [], []
    for i in picks:
        x, y = sequences[i], targets[i]
        if len(x) >= size:
            span = min(len(x), round(size * rng.uniform(1 - warp, 1 + warp)))
            pos = int(rng.integers(0, len(x) - span + 1)) + np.linspace(0, span - 1, size)
            lo = np.floor(pos).astype(int)
            frac = (pos - lo)[:, None]
            xs.append((x[lo] * (1 - frac) + x[np.minimum(lo + 1, len(x) - 1)] * frac).astype(np.float32))
            ys.append(y[np.rint(pos).astype(int)])
            ms.append(np.ones(size, dtype=bool))
        else:
            pad = size - len(x)
            xs.append(np.pad(x, ((0, pad), (0, 0)), mode="edge"))
            ys.append(np.pad(y, [(0, pad)] + [(0, 0)] * (y.ndim - 1)))
            ms.append(np.arange(size) < len(x))
    return np.stack(xs), np.stack(ys), np.stack(ms)


def _class_weights(targets: list[np.ndarray], mode: str, n_outputs: int) -> torch.Tensor:
    """Inverse-frequency class weights (exclusive, clipped) or negative/positive ratios (multilabel)."""
    if mode != "exclusive":
        return positive_weights(targets, max_weight=50.0)
    counts = np.bincount(np.concatenate(targets), minlength=n_outputs).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_outputs)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(np.clip(weights, 0, 50), dtype=torch.float32)


def _loss(
    logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, mode: str, weights: torch.Tensor | None
) -> torch.Tensor:
    if mode == "exclusive":
        return F.cross_entropy(logits[mask], y[mask], weight=weights)
    return masked_bce(logits, y.float(), mask, weights)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-window channel gain, offset and noise: recordings of other people and devices differ so."""
    b, _, c = x.shape
    gain = 1 + 0.1 * torch.randn(b, 1, c, generator=generator)
    offset = 0.1 * torch.randn(b, 1, c, generator=generator)
    return x * gain + offset + 0.03 * torch.randn(x.shape, generator=generator)


def evaluate(net: SequenceNet, data: Sequences, mode: str, size: int) -> dict[str, float]:
    """Held-out scores: per-sample argmax classes (exclusive, as one-hot) or labels at 0.5 (multilabel)."""
    n_outputs = net.head.out_channels
    preds, truths = [], []
    for x, y in zip(*data, strict=True):
        probs = probabilities(predict_logits(net, x, size), mode)
        if mode == "exclusive":
            preds.append(np.eye(n_outputs, dtype=bool)[probs.argmax(-1)])
            truths.append(np.eye(n_outputs, dtype=bool)[y])
        else:
            preds.append(probs >= 0.5)
            truths.append(y)
    return scores(np.concatenate(truths), np.concatenate(preds))


def fit(net: SequenceNet, train_set: Sequences, val_set: Sequences, config: SequenceTrainConfig) -> dict:
    """Train `net` in place on `train_set` (standardized float32 sequences; targets: class ids or multi-hot),
    keeping the best held-out macro-F1 weights (or the average of the best few); an epoch is a number of random
    windows in proportion to the training data (see `epoch_windows`). Returns the report."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = adamw(net, config)
    # halve the step size when held-out macro-F1 stalls: the held-out score settles instead of jumping
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=config.lr_patience
    )
    n_outputs = net.head.out_channels
    weights = _class_weights(train_set[1], config.mode, n_outputs) if config.class_weights else None
    size = config.sequence_size
    windows = epoch_windows(sum(len(x) for x in train_set[0]), config)

    def train_epoch() -> float:
        x_all, y_all, m_all = _sample_windows(*train_set, size, windows, config.time_warp, rng)
        total = 0.0
        for i in range(0, len(x_all), config.batch_size):
            idx = np.arange(i, min(i + config.batch_size, len(x_all)))
            x = _augment(torch.from_numpy(x_all[idx]), generator)
            y = torch.from_numpy(y_all[idx])
            y = y.long() if config.mode == "exclusive" else y
            loss = _loss(net(x), y, torch.from_numpy(m_all[idx]), config.mode, weights)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        return total / len(x_all)

    report = training_loop(
        net,
        config,
        train_epoch,
        lambda: evaluate(net, val_set, config.mode, size),
        after_eval=lambda metrics: scheduler.step(metrics["macro_f1"]),
    )
    return {**report, "windows_per_epoch": windows}
