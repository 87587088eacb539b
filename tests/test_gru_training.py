"""The training pass of the sequence net computes what the plain formulation computes: `bidirectional_gru`
against `nn.GRU`, and the coarse-rate merge against upsampling the context and merging at the fine rate, in
outputs and in every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fixtures.sequence_reference import full_rate_forward
from utils.temporal.gru_training import bidirectional_gru
from utils.temporal.sequence_net import SequenceNet, SequenceNetConfig


def gradients(output: torch.Tensor, inputs: list[torch.Tensor], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Gradients of a random projection of `output`, so every output element counts with its own weight."""
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(seed), dtype=output.dtype)
    return torch.autograd.grad((output * weights).sum(), inputs)


@pytest.mark.parametrize(("layers", "steps"), [(1, 1), (1, 9), (2, 7)])
def test_the_written_out_gru_backward_matches_pytorch_gru(layers: int, steps: int) -> None:
    torch.manual_seed(layers)
    gru = nn.GRU(5, 4, num_layers=layers, batch_first=True, bidirectional=True).double()
    x = torch.randn(3, steps, 5, dtype=torch.float64, requires_grad=True)
    inputs = [x, *gru.parameters()]
    expected, got = gru(x)[0], bidirectional_gru(gru, x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for ours, theirs in zip(gradients(got, inputs), gradients(expected, inputs), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_other_grus_are_refused_rather_than_computed_otherwise() -> None:
    x = torch.randn(2, 3, 5)
    for gru in (nn.GRU(5, 4, batch_first=True), nn.GRU(5, 4, num_layers=2, dropout=0.1, bidirectional=True)):
        with pytest.raises(ValueError, match="bidirectional"):
            bidirectional_gru(gru, x)


@pytest.mark.parametrize("length", [1, 4, 203, 512])
def test_the_training_forward_pass_and_its_gradients_equal_the_full_rate_formulation(length: int) -> None:
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=3, n_outputs=4, hidden_size=16, conv_blocks=2)).double()
    net.eval()  # no dropout, so both passes compute one function; gradients are on, as in training
    x = 3 * torch.randn(2, length, 3, dtype=torch.float64)
    parameters = list(net.parameters())
    expected, got = full_rate_forward(net, x), net(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    for ours, theirs in zip(gradients(got, parameters), gradients(expected, parameters), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
