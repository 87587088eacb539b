"""The timeline net's own behaviour, without videos: its feature standardization across a warm start."""

from __future__ import annotations

import numpy as np
import torch

from utils.temporal.timeline_net import TimelineNet, TimelineNetConfig, predict_proba


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
