"""Rewrites of a fused YOLO classification backbone into an equivalent network that is cheaper to run.

Both save whole passes over activations that neither PyTorch nor ONNX Runtime fuses away: the input's
division by 255 moves into the first convolution's weights, and each C2f block's `chunk` of one
convolution's output becomes two convolutions (no Slice, so ONNX Runtime keeps the block in its blocked
memory layout instead of reordering around it). Features change only by float rounding (~1e-6).
"""

from __future__ import annotations

import torch
from torch import nn


class _Divide(nn.Module):
    """x / divisor, for a backbone whose first layer cannot absorb the division."""

    def __init__(self, divisor: float):
        super().__init__()
        self.divisor = divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.divisor


def with_input_divisor(backbone: nn.Sequential, divisor: float) -> nn.Sequential:
    """`backbone` applied to `x / divisor`: folded into the first convolution when it is one (zero padding
    stays zero), else applied first. Changes the first layer's weights in place."""
    first = getattr(backbone[0], "conv", None)
    if isinstance(first, nn.Conv2d) and first.padding_mode == "zeros":
        first.weight.data.div_(divisor)
        return backbone
    return nn.Sequential(_Divide(divisor), *backbone)


class SplitFreeC2f(nn.Module):
    """A fused C2f block with its first convolution's two output halves as two convolutions."""

    def __init__(self, block: nn.Module):
        super().__init__()
        conv, hidden = block.cv1.conv, block.c
        self.first_half = _output_slice(conv, slice(0, hidden))
        self.second_half = _output_slice(conv, slice(hidden, 2 * hidden))
        self.act = block.cv1.act
        self.m = block.m
        self.cv2 = block.cv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.act(self.first_half(x)), self.act(self.second_half(x))]  # == cv1(x).chunk(2, 1)
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def _output_slice(conv: nn.Conv2d, channels: slice) -> nn.Conv2d:
    """The convolution computing only `channels` of `conv`'s output."""
    part = nn.Conv2d(
        conv.in_channels,
        channels.stop - channels.start,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    part.weight.data = conv.weight.data[channels].clone()
    if conv.bias is not None:
        part.bias.data = conv.bias.data[channels].clone()
    return part


def without_chunks(backbone: nn.Sequential) -> nn.Sequential:
    """`backbone` with every fused C2f block (C3k2 too: it is one) made split-free, in place."""
    from ultralytics.nn.modules.block import C2f

    for i, layer in enumerate(backbone):
        if isinstance(layer, C2f) and type(layer).forward is C2f.forward and _fused_plain_conv(layer.cv1):
            backbone[i] = SplitFreeC2f(layer)
    return backbone


def _fused_plain_conv(layer: nn.Module) -> bool:
    """An Ultralytics Conv whose BatchNorm is fused into an ungrouped nn.Conv2d."""
    conv = getattr(layer, "conv", None)
    return isinstance(conv, nn.Conv2d) and conv.groups == 1 and not hasattr(layer, "bn")
