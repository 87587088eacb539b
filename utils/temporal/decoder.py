"""Per-step probabilities -> labelled segments, without fragmentation: the one decoder of video frames and
time-series samples alike (callers convert frames / seconds to steps and back at their edges).

- `decode_exclusive`: one class per step (a background class included): a Viterbi path with a cost per
  class switch, then runs shorter than their class's minimum length are given to a neighbour.
- `decode_multilabel`: independent on/off per label (overlaps allowed): a two-state Viterbi per label around
  a probability threshold (or the plain threshold when the switch cost is 0), then gaps up to `max_gap` are
  bridged and runs shorter than `min_len` dropped.
Segments use 0-based step indices with an inclusive end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPS = 1e-6
# Default Viterbi switch cost, in nats per step of the shortest segment worth keeping: a run that short
# survives when it is clearly more likely than the alternative, flicker does not.
SWITCH_COST_PER_STEP = 0.5
# Sequences up to this length are decoded in one block; longer ones in about 4 sqrt(n) blocks side by side
# (of sqrt(n) / 4 steps: fewer, wider numpy steps; bench/bench_decoder.py).
SINGLE_BLOCK = 4096


@dataclass(frozen=True)
class Segment:
    """One label over steps start..end (0-based, inclusive) with its mean probability."""

    label: int
    start: int
    end: int  # inclusive
    score: float


def runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """`(value, start, end_inclusive)` for each run of equal values in a 1-D array."""
    if len(values) == 0:
        return []
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change - 1, [len(values) - 1]))
    return [(int(values[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _block_transfer(steps: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(K, K, N) best score of each of N blocks from state s just before it to state j at its end, for
    time-major log-probabilities `steps` (L, K, N) and switch costs `cost` (K, N).

    Uses the cost structure (a switch costs min(c_i, c_j)) so a step is O(K^2) instead of O(K^3):
    max_i(M[i] - min(c_i, c_j)) = max(max_i(M[i] - c_i), max_i M[i] - c_j)."""
    _, k, n = steps.shape
    transfer = np.full((k, k, n), -np.inf)
    transfer[np.arange(k), np.arange(k)] = 0.0
    for step in steps:
        via_cheaper = transfer[:, 0] - cost[0]
        via_best = transfer[:, 0].copy()
        for i in range(1, k):
            np.maximum(via_cheaper, transfer[:, i] - cost[i], out=via_cheaper)
            np.maximum(via_best, transfer[:, i], out=via_best)
        np.maximum(transfer, via_cheaper[:, None], out=transfer)
        np.maximum(transfer, via_best[:, None] - cost[None], out=transfer)
        transfer += step[None]
    return transfer


def viterbi_paths(log_probs: np.ndarray, switch_penalty: np.ndarray) -> np.ndarray:
    """Most likely state sequences (G, n) of G independent sequences of log-probabilities (G, K, n), where a
    change between states i and j costs the smaller of `switch_penalty[g, i]` and `[g, j]` nats (short-lived states such as instants
    get cheap entries and exits).

    Long sequences are cut into about 4 sqrt(n) blocks that are decoded side by side: first each block's
    transfer scores (state before -> state at its end), then the exact scores at block borders one block at a
    time, then the usual forward pass and backtrace in every block at once. Python loops run over about
    sqrt(n) / 4 steps (times K states) and 4 sqrt(n) blocks instead of n steps, and find the path of a plain
    Viterbi (up to float rounding of exact ties)."""
    g, k, n = log_probs.shape
    if n == 0:
        return np.zeros((g, 0), dtype=np.int64)
    length = n if n <= SINGLE_BLOCK else math.isqrt(n // 16) + 1
    blocks = math.ceil(n / length)
    # Layout (L, K, G, B): each step is contiguous, and the G sequences' B blocks form one batch axis. The last
    # block is padded with equal scores, which changes no path: staying costs 0.
    steps = np.zeros((length, k, g, blocks), dtype=log_probs.dtype)
    full = n // length
    steps[..., :full] = log_probs[:, :, : full * length].reshape(g, k, full, length).transpose(3, 1, 0, 2)
    if full < blocks:
        steps[: n - full * length, :, :, full] = log_probs[:, :, full * length :].transpose(2, 1, 0)
    steps = steps.reshape(length, k, g * blocks)
    small = np.int8 if k < 128 else np.int32
    cost = np.repeat(np.broadcast_to(np.asarray(switch_penalty, dtype=np.float64), (g, k)).T, blocks, axis=1)
    transition = np.minimum(cost[:, None], cost[None, :])  # (from, to, G * B)
    transition[np.arange(k), np.arange(k)] = 0.0
    entry = np.zeros((k, g, blocks))  # exact Viterbi scores just before each block
    if blocks > 1:
        transfer = _block_transfer(steps, cost).reshape(k, k, g, blocks)
        for b in range(1, blocks):
            entry[:, :, b] = (entry[:, None, :, b - 1] + transfer[:, :, :, b - 1]).max(axis=0)
    score = entry.reshape(k, g * blocks)

    back = np.zeros((length, k, g * blocks), dtype=small)
    for t in range(length):
        best = score[0] - transition[0]  # (to, N): the first state wins ties, as np.argmax does
        for i in range(1, k):
            candidate = score[i] - transition[i]
            better = candidate > best
            back[t][better] = i
            np.maximum(best, candidate, out=best)
        score = best + steps[t]

    # Per block and end state: the state just before the block; then the end state of every block.
    columns = np.arange(g * blocks)
    before = np.broadcast_to(np.arange(k)[:, None], (k, g * blocks)).astype(np.int64)
    for t in range(length - 1, -1, -1):
        before = back[t][before, columns]
    before = before.reshape(k, g, blocks)
    ends = np.empty((g, blocks), dtype=np.int64)
    ends[:, -1] = np.argmax(score.reshape(k, g, blocks)[:, :, -1], axis=0)
    for b in range(blocks - 1, 0, -1):
        ends[:, b - 1] = before[ends[:, b], np.arange(g), b]

    path = np.empty((length, g * blocks), dtype=small)
    state = ends.reshape(-1)
    for t in range(length - 1, -1, -1):
        path[t] = state
        state = back[t][state, columns]
    return path.reshape(length, g, blocks).transpose(1, 2, 0).reshape(g, -1)[:, :n]


def viterbi_path(log_probs: np.ndarray, switch_penalty: float | np.ndarray) -> np.ndarray:
    """Most likely state sequence (n,) of one sequence (n, K); see `viterbi_paths`."""
    return viterbi_paths(log_probs.T[None], np.asarray(switch_penalty, dtype=np.float64)[None])[0]


def absorb_short_runs(path: np.ndarray, probs: np.ndarray, min_len: np.ndarray) -> np.ndarray:
    """Relabel runs shorter than `min_len[class]` as the neighbouring class that fits them best,
    shortest run first, until every run is long enough (or only one run is left)."""
    path = path.copy()
    while True:
        current = runs(path)
        short = [r for r in current if r[2] - r[1] + 1 < min_len[r[0]]]
        if not short or len(current) == 1:
            return path
        value, start, end = min(short, key=lambda r: r[2] - r[1])
        index = current.index((value, start, end))
        neighbours = [current[i][0] for i in (index - 1, index + 1) if 0 <= i < len(current)]
        best = max(neighbours, key=lambda c: probs[start : end + 1, c].mean())
        path[start : end + 1] = best


def decode_exclusive(
    probs: np.ndarray, switch_penalty: float | np.ndarray, min_len: np.ndarray, background: int | None = 0
) -> list[Segment]:
    """Segments of the non-background classes of mutually exclusive per-step probabilities (n, K)."""
    if len(probs) == 0:
        return []
    path = viterbi_path(np.log(probs + EPS), switch_penalty)
    path = absorb_short_runs(path, probs, np.maximum(min_len, 1))
    return [
        Segment(value, start, end, float(probs[start : end + 1, value].mean()))
        for value, start, end in runs(path)
        if value != background
    ]


def bridge_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Switch on inner gaps of at most `max_gap` steps between two active runs."""
    mask = mask.copy()
    for value, start, end in runs(mask.astype(np.int64)):
        inner = start > 0 and end < len(mask) - 1
        if value == 0 and inner and end - start + 1 <= max_gap:
            mask[start : end + 1] = True
    return mask


def on_masks(probs: np.ndarray, threshold: float, switch_penalty: np.ndarray) -> np.ndarray:
    """(n, L) on/off per label: a two-state Viterbi around `threshold` per label (all labels at once), or
    `probs >= threshold` for labels whose switch cost is 0."""
    masks = probs >= threshold
    smoothed = np.flatnonzero(np.asarray(switch_penalty) > 0)
    if len(smoothed) and len(probs):
        odds_shift = np.log(threshold + EPS) - np.log(1 - threshold + EPS)
        p = np.ascontiguousarray(probs[:, smoothed].T)  # (G, n)
        on = np.log(p + EPS) - odds_shift / 2
        off = np.log(1 - p + EPS) + odds_shift / 2
        cost = np.repeat(np.asarray(switch_penalty, dtype=np.float64)[smoothed, None], 2, axis=1)
        masks[:, smoothed] = viterbi_paths(np.stack([off, on], axis=1), cost).T.astype(bool)
    return masks


def decode_multilabel(
    probs: np.ndarray,
    threshold: float,
    switch_penalty: np.ndarray,
    min_len: np.ndarray,
    max_gap: np.ndarray,
) -> list[Segment]:
    """Segments per label of independent per-step probabilities (n, L); labels may overlap.
    `switch_penalty`, `min_len` and `max_gap` hold one value per label."""
    segments: list[Segment] = []
    masks = on_masks(probs, threshold, switch_penalty)
    for label in range(probs.shape[1]):
        mask = bridge_gaps(masks[:, label], int(max_gap[label]))
        for value, start, end in runs(mask.astype(np.int64)):
            if value == 1 and end - start + 1 >= max(1, int(min_len[label])):
                segments.append(Segment(label, start, end, float(probs[start : end + 1, label].mean())))
    return segments


def collapse_to_peak(segment: Segment, probs: np.ndarray) -> Segment:
    """The single most probable step of a segment, for labels that mark instants."""
    peak = segment.start + int(np.argmax(probs[segment.start : segment.end + 1, segment.label]))
    return Segment(segment.label, peak, peak, float(probs[peak, segment.label]))
