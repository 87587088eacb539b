"""Decoder speed: per-step probabilities -> segments on long sequences, as both control models decode them.

Times the block Viterbi of `utils.temporal.decoder` on a 2,000,000-sample, 5-class exclusive decode (time
series) and a 4-label multilabel decode (video frames), and, as the baseline in the same run, the textbook
Viterbi (one numpy step per sample, what the decoder did before) on the first `--baseline-samples` of the
exclusive case, extrapolated to the full length; both paths are checked equal there.

Run: .venv/bin/python -m bench.bench_decoder [--samples 2000000] [--baseline-samples 200000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from utils.temporal.decoder import EPS, decode_exclusive, decode_multilabel, viterbi_path


def noisy_probabilities(samples: int, classes: int, seed: int = 0) -> np.ndarray:
    """Runs of 50-1000 samples of one class, blurred with Dirichlet noise (float32, rows sum to 1)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 1000, samples // 50 + 1)
    truth = np.repeat(rng.integers(0, classes, len(lengths)), lengths)[:samples]
    probs = (rng.dirichlet(np.ones(classes), samples) * 0.5).astype(np.float32)
    probs[np.arange(samples), truth] += 0.5
    return probs


def textbook_viterbi(log_probs: np.ndarray, cost: np.ndarray) -> np.ndarray:
    n, k = log_probs.shape
    transition = np.minimum(cost[:, None], cost[None, :])
    np.fill_diagonal(transition, 0.0)
    score = log_probs[0].astype(np.float64)
    back = np.empty((n, k), dtype=np.int32)
    for t in range(1, n):
        candidates = score[:, None] - transition
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(k)] + log_probs[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def timed(run) -> tuple[object, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--baseline-samples", type=int, default=200_000)
    args = parser.parse_args()

    probs = noisy_probabilities(args.samples, 5)
    cost = np.full(5, 10.0)  # 0.5 nats per sample of a 20-sample shortest segment
    segments, exclusive_s = timed(lambda: decode_exclusive(probs, cost, np.full(5, 20)))
    labels = probs[:, 1:]
    _, multilabel_s = timed(
        lambda: decode_multilabel(labels, 0.5, np.full(4, 10.0), np.full(4, 20), np.full(4, 10))
    )

    part = np.log(probs[: args.baseline_samples] + EPS)
    fast, fast_s = timed(lambda: viterbi_path(part, cost))
    slow, slow_s = timed(lambda: textbook_viterbi(part, cost))
    assert np.array_equal(fast, slow), "the block Viterbi must find the textbook path"
    baseline_s = slow_s * args.samples / args.baseline_samples

    print(
        f"{args.samples:,} samples, 5 classes, exclusive decode:  {exclusive_s:6.2f} s ({len(segments)} segments)"
    )
    print(f"{args.samples:,} samples, 4 labels, multilabel decode:  {multilabel_s:6.2f} s")
    print(
        f"Viterbi on {args.baseline_samples:,} samples: block {fast_s:.3f} s, textbook loop {slow_s:.3f} s "
        f"(x{slow_s / fast_s:.0f}); textbook loop on {args.samples:,} extrapolated: {baseline_s:.1f} s"
    )


if __name__ == "__main__":
    main()
