"""The one decoder: per-step probabilities -> segments without fragmentation (video and time series)."""

from __future__ import annotations

import numpy as np

from utils.temporal.decoder import (
    Segment,
    absorb_short_runs,
    bridge_gaps,
    collapse_to_peak,
    decode_exclusive,
    decode_multilabel,
    runs,
    viterbi_path,
    viterbi_paths,
)


def one_hot_probs(path: list[int], k: int, confidence: float = 0.8) -> np.ndarray:
    probs = np.full((len(path), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(path)), path] = confidence
    return probs


def test_runs_lists_equal_value_stretches() -> None:
    assert runs(np.array([0, 0, 1, 1, 1, 0])) == [(0, 0, 1), (1, 2, 4), (0, 5, 5)]


def test_viterbi_removes_short_flicker_but_keeps_long_changes() -> None:
    path = [0] * 20 + [1, 0, 1] + [0] * 20 + [1] * 30
    smoothed = viterbi_path(np.log(one_hot_probs(path, 2)), switch_penalty=5.0)
    assert runs(smoothed) == [(0, 0, 42), (1, 43, 72)]


def test_cheap_entry_keeps_a_short_state() -> None:
    path = [0] * 20 + [2] * 2 + [0] * 20
    kept = viterbi_path(np.log(one_hot_probs(path, 3)), np.array([5.0, 5.0, 0.1]))
    assert kept[20:22].tolist() == [2, 2]


def test_absorb_short_runs_gives_them_to_the_best_neighbour() -> None:
    path = np.array([1] * 10 + [2] * 2 + [3] * 10)
    probs = one_hot_probs(path.tolist(), 4)
    probs[10:12, 3] = 0.15  # the short run looks more like its right neighbour
    assert runs(absorb_short_runs(path, probs, np.array([1, 5, 5, 5]))) == [(1, 0, 9), (3, 10, 21)]


def test_decode_exclusive_drops_background_and_scores_segments() -> None:
    probs = one_hot_probs([0] * 5 + [1] * 10 + [0] * 5 + [2] * 6, 3, confidence=0.9)
    segments = decode_exclusive(probs, 2.0, np.array([1, 3, 3]))
    assert [(s.label, s.start, s.end) for s in segments] == [(1, 5, 14), (2, 20, 25)]
    assert all(abs(s.score - 0.9) < 1e-9 for s in segments)


def test_bridge_gaps_fills_inner_gaps_only() -> None:
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    assert bridge_gaps(mask, 2).astype(int).tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0]


def test_decode_multilabel_allows_overlap_and_drops_short_runs() -> None:
    probs = np.zeros((40, 2))
    probs[5:30, 0] = 0.9
    probs[20:35, 1] = 0.8
    probs[37:38, 1] = 0.95  # a one-sample blip, shorter than min_len
    segments = decode_multilabel(probs, 0.5, np.array([1.0, 1.0]), np.array([3, 3]), np.array([1, 1]))
    assert [(s.label, s.start, s.end) for s in segments] == [(0, 5, 29), (1, 20, 34)]


def test_collapse_to_peak_returns_an_instant() -> None:
    probs = np.zeros((10, 1))
    probs[3:7, 0] = [0.6, 0.9, 0.7, 0.6]
    assert collapse_to_peak(Segment(0, 3, 6, 0.7), probs) == Segment(0, 4, 4, 0.9)


def plain_viterbi(log_probs: np.ndarray, cost: np.ndarray) -> list[int]:
    """The textbook recursion in plain Python, one step and one state at a time: the reference."""
    k = log_probs.shape[1]
    score = [float(v) for v in log_probs[0]]
    pointers = []
    for row in log_probs[1:]:
        step, new = [], []
        for j in range(k):
            options = [score[i] - (0.0 if i == j else min(cost[i], cost[j])) for i in range(k)]
            best = max(range(k), key=lambda i, options=options: (options[i], -i))
            step.append(best)
            new.append(options[best] + float(row[j]))
        pointers.append(step)
        score = new
    path = [max(range(k), key=lambda i: (score[i], -i))]
    for step in reversed(pointers):
        path.append(step[path[-1]])
    return path[::-1]


def noisy_states(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.integers(0, k, n // 50 + 1), 50)[:n]
    probs = rng.dirichlet(np.ones(k), n) * 0.6
    probs[np.arange(n), truth] += 0.4
    return np.log(probs)


def test_block_viterbi_equals_the_plain_loop_on_long_noisy_sequences() -> None:
    for n, k, seed in [(9000, 4, 0), (20_011, 3, 1), (4097, 2, 2)]:
        log_probs = noisy_states(n, k, seed)
        cost = np.linspace(0.5, 4.0, k)
        np.testing.assert_array_equal(viterbi_path(log_probs, cost), plain_viterbi(log_probs, cost))


def test_viterbi_paths_decodes_independent_sequences_at_once() -> None:
    stacked = np.stack([noisy_states(5000, 2, seed) for seed in range(3)])
    cost = np.array([[1.0, 1.0], [3.0, 3.0], [0.2, 0.2]])
    paths = viterbi_paths(stacked.transpose(0, 2, 1), cost)
    for g in range(3):
        np.testing.assert_array_equal(paths[g], plain_viterbi(stacked[g], cost[g]))


def test_zero_switch_cost_is_the_plain_threshold() -> None:
    probs = np.array([[0.5, 0.2], [0.7, 0.6], [0.1, 0.9], [0.5, 0.4]])
    segments = decode_multilabel(probs, 0.5, np.zeros(2), np.ones(2), np.zeros(2))
    assert [(s.label, s.start, s.end) for s in segments] == [(0, 0, 1), (0, 3, 3), (1, 1, 2)]
