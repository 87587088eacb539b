"""Long series on ONNX Runtime predict what PyTorch predicts: the exported prediction graph (GroupNorm written
out, the coarse-rate merge) against the PyTorch path, window stacks split over threads, and the fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from utils.service.settings import Settings
from utils.temporal import sequence_net, sequence_onnx
from utils.temporal.onnx_graphs import OnnxUnavailable
from utils.temporal.sequence_net import PREDICT_WINDOW_FACTOR, SequenceNet, SequenceNetConfig, predict_logits
from utils.temporal.sequence_onnx import TwoPassGroupNorm, load_checked


def trained_like_net(in_channels: int = 4, hidden: int = 8) -> SequenceNet:
    """A small net with norm scales and biases away from their initial 1 and 0, as after training."""
    torch.manual_seed(0)
    net = SequenceNet(
        SequenceNetConfig(in_channels=in_channels, n_outputs=3, hidden_size=hidden, conv_blocks=3)
    )
    with torch.no_grad():
        for block in net.blocks:
            block.norm.weight.normal_(1.0, 0.5)
            block.norm.bias.normal_(0.0, 0.5)
    return net.eval()


def test_group_norm_written_out_matches_pytorch_on_signals_far_from_zero() -> None:
    """A one-pass variance (mean of squares minus squared mean) is off by ~4e-3 here; two passes are not."""
    torch.manual_seed(0)
    norm = nn.GroupNorm(1, 64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = 100.0 + torch.randn(8, 64, 512)
    with torch.inference_mode():
        np.testing.assert_allclose(TwoPassGroupNorm(norm)(x).numpy(), norm(x).numpy(), atol=1e-4)


def test_onnx_runtime_predicts_the_logits_of_pytorch_for_any_length(monkeypatch) -> None:
    monkeypatch.setattr(sequence_net, "RUNNER_WINDOWS", 3)  # several calls, stacks of unequal size
    monkeypatch.setattr(sequence_net, "RUNNER_STACKS", 2)
    net = trained_like_net()
    runner = load_checked(net, threads=2)
    size = 16
    rng = np.random.default_rng(3)
    for length in (1, 37, size * PREDICT_WINDOW_FACTOR, 23 * size * PREDICT_WINDOW_FACTOR + 5):
        values = (3 * rng.normal(size=(length, 4)) + 2).astype(np.float32)
        want = predict_logits(net, values, size)
        got = predict_logits(net, values, size, runner=runner)
        assert got.shape == want.shape == (length, 3)
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_a_graph_that_disagrees_with_pytorch_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(sequence_onnx, "TOLERANCE", -1.0)  # no difference is small enough
    with pytest.raises(OnnxUnavailable, match="differ from PyTorch"):
        load_checked(trained_like_net(), threads=1)


def test_sequence_runtime_setting_chooses_pytorch_or_onnx_runtime() -> None:
    assert Settings.from_env({}).sequence_runtime == "auto"
    assert Settings.from_env({"SEQUENCE_RUNTIME": " Torch "}).sequence_runtime == "torch"
    with pytest.raises(ValueError, match="SEQUENCE_RUNTIME"):
        Settings.from_env({"SEQUENCE_RUNTIME": "tensorrt"})
