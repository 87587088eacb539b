"""`FastDropout` is dropout: each element dropped with probability p (whichever 16 bits of a random word decide
it), the others scaled by 1 / (1 - p), the gradient masked the same way, nothing done outside training; and
the temporal nets train with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.temporal.dropout import FastDropout, scaled_keep_mask
from utils.temporal.sequence_net import SequenceNet, SequenceNetConfig
from utils.temporal.timeline_net import TimelineNet, TimelineNetConfig


@pytest.mark.parametrize("p", [0.15, 0.2, 0.5, 0.9])
def test_each_element_is_dropped_with_probability_p_and_the_others_scaled(p: float) -> None:
    torch.manual_seed(0)
    mask = scaled_keep_mask(torch.Size([1000, 4000]), p, torch.float32)
    dropped = mask == 0
    kept = mask[~dropped]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
    # within 6 standard deviations of a Bernoulli(p) mean over 1,000,000 draws, for each of the four
    # 16-bit quarters of the 64-bit random words (a quarter with fewer random bits would stand out)
    tolerance = 6 * (p * (1 - p) / 1e6) ** 0.5
    for quarter in range(4):
        assert float(dropped.flatten()[quarter::4].float().mean()) == pytest.approx(p, abs=tolerance)
    assert float(mask.mean()) == pytest.approx(1.0, abs=0.01)  # the expected value is kept


def test_masks_repeat_under_the_same_seed_and_differ_otherwise() -> None:
    shape = torch.Size([3, 7, 5])  # not a multiple of 4 elements
    torch.manual_seed(1)
    first = scaled_keep_mask(shape, 0.3, torch.float64)
    torch.manual_seed(1)
    assert torch.equal(scaled_keep_mask(shape, 0.3, torch.float64), first)
    assert not torch.equal(scaled_keep_mask(shape, 0.3, torch.float64), first)
    assert first.dtype == torch.float64 and first.shape == shape


def test_the_gradient_is_masked_as_the_output_is() -> None:
    torch.manual_seed(2)
    x = torch.randn(8, 16, 32, requires_grad=True)
    upstream = torch.randn(8, 16, 32)
    out = FastDropout(0.25).train()(x)
    out.backward(upstream)
    kept = (out != 0).detach()
    assert 0.7 < float(kept.float().mean()) < 0.8
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    torch.testing.assert_close(x.grad, torch.where(kept, upstream / 0.75, 0.0))


def test_outside_training_and_at_zero_it_passes_its_input_through() -> None:
    x = torch.randn(4, 10)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))


def test_the_temporal_nets_train_with_it() -> None:
    nets = [
        SequenceNet(SequenceNetConfig(in_channels=3, n_outputs=2)),
        TimelineNet(TimelineNetConfig(in_channels=8, n_outputs=2)),
    ]
    for net in nets:
        dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
        assert dropouts and all(type(m) is FastDropout for m in dropouts)
