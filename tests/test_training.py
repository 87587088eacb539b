"""The shared training vocabulary: held-out splits, scores, the weighted loss and the one training loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from utils.temporal.training import (
    TrainConfig,
    TrainingStopped,
    adamw,
    carry_standardization,
    holdout_split,
    positive_weights,
    scores,
    stop_when,
    training_loop,
)


def test_three_or_more_tasks_hold_out_whole_tasks() -> None:
    sequences = [np.full((50, 1), i, dtype=np.float32) for i in range(5)]
    (train_x, _), (val_x, _) = holdout_split(sequences, [np.zeros(50)] * 5, block=32)
    assert len(train_x) == 4 and len(val_x) == 1
    assert {float(x[0, 0]) for x in train_x} | {float(val_x[0][0, 0])} == {0, 1, 2, 3, 4}


def test_few_tasks_hold_out_blocks_and_keep_training_pieces_apart() -> None:
    x = np.arange(1000, dtype=np.float32)[:, None]
    (train_x, _), (val_x, _) = holdout_split([x], [np.zeros(1000)], block=100)
    held = np.concatenate(val_x)[:, 0]
    kept = np.concatenate(train_x)[:, 0]
    assert len(held) + len(kept) == 1000 and not set(held) & set(kept)
    assert 0.1 < len(held) / 1000 < 0.3
    for piece in train_x:  # every training piece is contiguous: no window can span a held-out block
        assert np.all(np.diff(piece[:, 0]) == 1)


def test_a_one_sample_series_still_has_training_data() -> None:
    (train_x, _), (val_x, _) = holdout_split([np.ones((1, 2))], [np.zeros(1)], block=32)
    assert sum(len(x) for x in train_x) == 1 and sum(len(x) for x in val_x) == 1


def test_scores_count_labels_present_in_truth_or_prediction() -> None:
    truth = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    predicted = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0]])
    result = scores(truth, predicted)
    assert result["accuracy"] == 0.75
    assert abs(result["macro_f1"] - (2 / 3 + 1 + 0) / 3) < 1e-9  # the wrongly predicted label counts as 0


def test_positive_weights_favour_rare_labels_within_bounds() -> None:
    targets = [np.array([[1, 0, 0]] * 9 + [[1, 1, 0]], dtype=np.float32)]
    assert positive_weights(targets, max_weight=5.0).tolist() == [1.0, 5.0, 1.0]


def test_training_loop_keeps_the_best_epoch_and_stops_on_patience() -> None:
    net = nn.Linear(1, 1)
    held_out = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.99])
    states = []

    def train_epoch() -> float:
        with torch.no_grad():
            net.weight.add_(1.0)
        states.append(float(net.weight.detach()))
        return 0.0

    def evaluate() -> dict[str, float]:
        return {"macro_f1": next(held_out), "accuracy": 0.0}

    report = training_loop(net, TrainConfig(epochs=10, patience=2), train_epoch, evaluate)
    assert report["epochs"] == 4 and report["best"]["epoch"] == 2
    assert float(net.weight.detach()) == states[1]  # the weights of the best held-out epoch are back


def test_training_loop_with_keep_start_returns_the_starting_weights_when_no_epoch_beats_them() -> None:
    net = nn.Linear(1, 1)
    start = float(net.weight.detach())
    held_out = iter([0.8, 0.5, 0.7, 0.6])  # before the first epoch, then epochs 1-3

    def train_epoch() -> float:
        with torch.no_grad():
            net.weight.add_(1.0)
        return 0.0

    def evaluate() -> dict[str, float]:
        return {"macro_f1": next(held_out), "accuracy": 0.0}

    report = training_loop(net, TrainConfig(epochs=10, patience=3, keep_start=True), train_epoch, evaluate)
    assert report["epochs"] == 3 and report["best"]["epoch"] == 0
    assert float(net.weight.detach()) == start


def test_training_loop_stops_between_epochs_once_its_scope_says_so() -> None:
    net = nn.Linear(1, 1)
    epochs: list[int] = []

    def train_epoch() -> float:
        epochs.append(len(epochs) + 1)
        return 0.0

    def evaluate() -> dict[str, float]:
        return {"macro_f1": 0.5, "accuracy": 0.0}

    config = TrainConfig(epochs=10, patience=10)
    with stop_when(lambda: len(epochs) >= 3), pytest.raises(TrainingStopped):
        training_loop(net, config, train_epoch, evaluate)
    assert epochs == [1, 2, 3]
    epochs.clear()
    assert training_loop(net, config, train_epoch, evaluate)["epochs"] == 10  # outside the scope: no stop


def test_warm_schedule_is_shorter_with_a_smaller_step_and_a_quick_plateau_stop() -> None:
    full = TrainConfig(epochs=60, patience=10, min_epochs=15, learning_rate=2e-3)
    warm = full.warm()
    assert (warm.epochs, warm.patience, warm.min_epochs) == (full.warm_epochs, full.warm_patience, 0)
    assert warm.learning_rate < full.learning_rate
    assert TrainConfig(epochs=3).warm().epochs == 3  # never more epochs than configured


def test_carrying_a_layer_to_new_standardization_statistics_keeps_what_it_computes() -> None:
    torch.manual_seed(0)
    raw = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 3))
    old = (np.array([1.0, -2.0, 0.5]), np.array([0.5, 3.0, 1.5]))
    new = (raw.mean(0), raw.std(0))
    linear, conv = nn.Linear(3, 4), nn.Conv1d(5, 4, kernel_size=3)  # conv: 3 standardized + 2 other channels
    other = torch.randn(40, 2)

    def outputs(stats: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor((raw - stats[0]) / stats[1], dtype=torch.float32)
        return linear(x), conv(torch.cat([x, other], dim=1).T[None])

    with torch.no_grad():
        before = outputs(old)
        carry_standardization(linear, old, new)
        carry_standardization(conv, old, new)
        after = outputs(new)
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_the_fused_optimizer_takes_the_steps_of_pytorchs_default_adamw() -> None:
    config = TrainConfig(learning_rate=1e-2, weight_decay=1e-2)
    nets, starts = [], []
    for make_optimizer in (
        lambda net: adamw(net, config),
        lambda net: torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2),
    ):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
        starts.append(net[0].weight.detach().clone())
        optimizer = make_optimizer(net)
        data = torch.Generator().manual_seed(1)
        for _ in range(30):
            loss = net(torch.randn(8, 20, generator=data)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        nets.append(net)
    torch.testing.assert_close(starts[0], starts[1], rtol=0, atol=0)  # both started from the same weights
    assert float((nets[0][0].weight - starts[0]).abs().max()) > 1e-3  # and the steps moved them
    for fused, default in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(fused, default, rtol=1e-5, atol=1e-6)


def test_a_processs_first_training_does_not_wait_for_torch_imports() -> None:
    """torch.optim imports torch._dynamo (and sympy) with a process's first optimizer: over a second that the
    service pays at start, so a first training, or one in a forked RQ work horse, does not."""
    script = """
import sys
import model  # what the web process and the RQ worker import at start
before = set(sys.modules)
from utils.temporal.training import TrainConfig, adamw
import torch
adamw(torch.nn.Linear(2, 2), TrainConfig())
print(sorted(set(sys.modules) - before))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
