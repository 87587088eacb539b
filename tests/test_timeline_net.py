"""The timeline net's own behaviour, without videos: its feature standardization across a warm start, its
windowed predictions, its training precision, and when its training stops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from utils.temporal.timeline_net import (
    NATIVE_BF16,
    WINDOWS_PER_BATCH,
    TimelineNet,
    TimelineNetConfig,
    TimelineTrainConfig,
    predict_proba,
)
from utils.temporal.training import training_loop, window_starts


def test_new_feature_statistics_leave_a_trained_nets_predictions_unchanged() -> None:
    rng = np.random.default_rng(0)
    first, later = rng.normal(0, 1, (60, 8)), rng.normal(2, 3, (60, 8))
    torch.manual_seed(0)
    net = TimelineNet(TimelineNetConfig(in_channels=8, n_outputs=3))
    net.set_standardization([first])
    before = predict_proba(net, later, 16)

    net.set_standardization([first, later], trained=True)  # a warm start on more data
    torch.testing.assert_close(predict_proba(net, later, 16), before, atol=1e-4, rtol=1e-4)
    assert abs(float(net.feature_mean.mean()) - 1.0) < 0.3  # the statistics did move to the new data

    net.set_standardization([later])  # a fresh net simply takes the new statistics
    assert not np.allclose(predict_proba(net, later, 16), before, atol=1e-3)


def test_training_multiplies_the_input_layer_in_bfloat16_where_the_cpu_does_so_natively() -> None:
    torch.manual_seed(0)
    net = TimelineNet(TimelineNetConfig(in_channels=64, n_outputs=3, dropout=0.0))
    x = torch.randn(4, 16, 64)
    with torch.inference_mode():
        predicted = net.eval().from_standardized(x)
    trained = net.train().from_standardized(x)
    gap = float((trained - predicted).detach().abs().max())
    if NATIVE_BF16:
        assert 0 < gap < 0.05  # bfloat16 rounding, no more
    else:
        assert gap == 0
    trained.sum().backward()
    grad = net.input[0].weight.grad
    assert grad is not None and grad.dtype == torch.float32 and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("length", [5, 16, 17, 203, 8 * WINDOWS_PER_BATCH + 37])
def test_predictions_average_each_frames_windows_run_whole_through_the_net(length: int) -> None:
    """The input layer runs once per frame and windows share it: the same as running every window whole."""
    torch.manual_seed(0)
    net = TimelineNet(TimelineNetConfig(in_channels=24, n_outputs=3)).eval()
    features = np.random.default_rng(length).normal(size=(length, 24)).astype(np.float32)
    size = min(16, length)
    total, counts = np.zeros((length, 3)), np.zeros((length, 1))
    with torch.inference_mode():
        for start in window_starts(length, size, max(1, size // 2)):
            window = torch.as_tensor(features[None, start : start + size])
            total[start : start + size] += torch.sigmoid(net(window))[0].numpy()
            counts[start : start + size] += 1
    np.testing.assert_allclose(predict_proba(net, features, 16), total / counts, atol=1e-6)


@pytest.mark.parametrize(("per_epoch", "stops"), [(4e-5, True), (2e-4, False)])
def test_a_held_out_loss_that_only_creeps_down_stops_the_training_after_its_patience(
    per_epoch: float, stops: bool
) -> None:
    """A loss falling by less than `min_gain` over `patience` epochs (a settled net growing surer) stops the
    training with the weights of its last counted gain; one falling faster trains on."""
    net = nn.Linear(1, 1)
    config = TimelineTrainConfig(epochs=200)
    losses = iter(0.5 - per_epoch * epoch for epoch in range(1, 201))
    after_first_epoch = net.weight.detach() + 1.0  # each epoch adds 1 to the weight

    def train_epoch() -> float:
        with torch.no_grad():
            net.weight.add_(1.0)
        return 0.0

    def evaluate() -> dict[str, float]:
        return {"loss": next(losses), "macro_f1": 0.9, "accuracy": 0.9}

    report = training_loop(net, config, train_epoch, evaluate, monitor="loss", minimize=True)
    if stops:
        assert report["epochs"] == 1 + config.patience and report["best"]["epoch"] == 1
        assert torch.equal(net.weight.detach(), after_first_epoch)
    else:
        assert report["epochs"] == config.epochs and report["best"]["epoch"] > config.epochs - config.patience
