"""The time-series net: windows inside sequences, prediction on any length, training through the shared loop."""

from __future__ import annotations

import numpy as np
import torch

from utils.temporal.sequence_net import (
    SequenceNet,
    SequenceNetConfig,
    SequenceTrainConfig,
    _sample_windows,
    epoch_windows,
    fit,
    predict_logits,
    probabilities,
)


def test_sampled_windows_never_cross_sequence_borders() -> None:
    sequences = [np.full((30, 1), 1, dtype=np.float32), np.full((100, 1), 2, dtype=np.float32)]
    targets = [np.zeros(30, dtype=np.int64), np.ones(100, dtype=np.int64)]
    x, y, mask = _sample_windows(sequences, targets, 40, 50, 0.2, np.random.default_rng(0))
    assert x.shape == (50, 40, 1)
    for window, labels, valid in zip(x, y, mask, strict=True):
        assert len(set(window[valid, 0].tolist())) == 1
        assert len(set(labels[valid].tolist())) == 1
    assert (~mask).any()  # the 30-sample sequence is padded and masked


def test_windows_per_epoch_follow_the_training_data_within_bounds() -> None:
    config = SequenceTrainConfig(sequence_size=100, passes_per_epoch=2, min_windows=10, max_windows=50)
    assert epoch_windows(200, config) == 10  # a tiny project still takes a few steps per epoch
    assert epoch_windows(1500, config) == 30
    assert epoch_windows(10**6, config) == 50
    warm = config.warm()  # fine-tuning checks the held-out data after half as many windows
    assert (epoch_windows(10**6, warm), epoch_windows(200, warm)) == (25, 10)


def test_fine_tuning_takes_small_steps_and_keeps_its_starting_weights_unless_an_epoch_beats_them() -> None:
    config = SequenceTrainConfig(learning_rate=2e-3)
    warm = config.warm()
    assert warm.keep_start and not config.keep_start
    assert warm.learning_rate <= 0.25 * config.learning_rate


def test_a_stalled_training_halves_its_step_before_it_stops() -> None:
    full = SequenceTrainConfig()
    assert full.lr_patience < full.patience  # a plateau first gets a smaller step, then the stop
    warm = full.warm()
    assert warm.lr_patience < warm.patience and warm.lr_patience <= full.lr_patience


def test_predict_logits_covers_any_length() -> None:
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=2, n_outputs=3, hidden_size=8))
    for length in (1, 3, 37, 300):
        logits = predict_logits(net, np.random.randn(length, 2).astype(np.float32), size=64)
        assert logits.shape == (length, 3)
        assert np.allclose(probabilities(logits, "exclusive").sum(-1), 1, atol=1e-5)


def test_training_learns_a_level_shift_on_held_out_data() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (np.arange(n) // 40 % 2).astype(np.int64) + 1  # classes 1 and 2 alternate, no background
        x = (y[:, None] * 2.0 - 3 + 0.3 * rng.standard_normal((n, 1))).astype(np.float32)
        return x, y

    train_set = tuple(map(list, zip(*[make(400) for _ in range(2)], strict=True)))
    val_set = tuple(map(list, zip(make(400), strict=True)))
    net = SequenceNet(SequenceNetConfig(in_channels=1, n_outputs=3, hidden_size=8))
    report = fit(net, train_set, val_set, SequenceTrainConfig(epochs=6, sequence_size=64, min_epochs=1))
    assert report["best"]["macro_f1"] > 0.9
    assert 1 <= report["epochs"] <= 6 and not net.training
