"""Per-sample (or per-frame) probabilities -> labelled segments, without fragmentation.

Pure numpy functions shared by any temporal labeller. Two decoders:
- `decode_exclusive`: one class per sample (a background class included): a Viterbi path with a fixed
  cost per class switch, then runs shorter than their class's minimum length are given to a neighbour.
- `decode_multilabel`: independent on/off per label (overlaps allowed): the same two-state Viterbi per
  label around a probability threshold, then gaps up to `max_gap` are bridged and short runs dropped.
Segments use sample indices with an inclusive end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6


@dataclass(frozen=True)
class Segment:
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


def viterbi_path(log_probs: np.ndarray, switch_penalty: float | np.ndarray) -> np.ndarray:
    """Most likely state sequence when a change of state costs nats: one number, or one per state where
    a change between states i and j costs the smaller of the two (short-lived states such as instants
    get cheap entries and exits)."""
    n, k = log_probs.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cost = np.broadcast_to(np.asarray(switch_penalty, dtype=np.float64), (k,))
    transition = np.minimum(cost[:, None], cost[None, :])
    np.fill_diagonal(transition, 0.0)
    score = log_probs[0].astype(np.float64)
    back = np.empty((n, k), dtype=np.int32)
    for t in range(1, n):
        candidates = score[:, None] - transition  # (from, to)
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(k)] + log_probs[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


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
    """Segments of the non-background classes of mutually exclusive per-sample probabilities (n, K)."""
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
    """Switch on inner gaps of at most `max_gap` samples between two active runs."""
    mask = mask.copy()
    for value, start, end in runs(mask.astype(np.int64)):
        inner = start > 0 and end < len(mask) - 1
        if value == 0 and inner and end - start + 1 <= max_gap:
            mask[start : end + 1] = True
    return mask


def decode_multilabel(
    probs: np.ndarray,
    threshold: float,
    switch_penalty: np.ndarray,
    min_len: np.ndarray,
    max_gap: np.ndarray,
) -> list[Segment]:
    """Segments per label of independent per-sample probabilities (n, L); labels may overlap.
    `switch_penalty`, `min_len` and `max_gap` hold one value per label."""
    segments: list[Segment] = []
    odds_shift = np.log(threshold + EPS) - np.log(1 - threshold + EPS)
    for label in range(probs.shape[1]):
        p = probs[:, label]
        on = np.log(p + EPS) - odds_shift / 2
        off = np.log(1 - p + EPS) + odds_shift / 2
        mask = viterbi_path(np.stack([off, on], axis=1), float(switch_penalty[label])).astype(bool)
        mask = bridge_gaps(mask, int(max_gap[label]))
        for value, start, end in runs(mask.astype(np.int64)):
            if value == 1 and end - start + 1 >= max(1, int(min_len[label])):
                segments.append(Segment(label, start, end, float(p[start : end + 1].mean())))
    return segments


def collapse_to_peak(segment: Segment, probs: np.ndarray) -> Segment:
    """The single most probable sample of a segment, for labels that mark instants."""
    peak = segment.start + int(np.argmax(probs[segment.start : segment.end + 1, segment.label]))
    return Segment(segment.label, peak, peak, float(probs[peak, segment.label]))
