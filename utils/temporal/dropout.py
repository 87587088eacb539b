"""Dropout for the temporal nets' training, with its mask drawn at a third of PyTorch's cost on CPU.

`nn.Dropout` draws one Bernoulli sample per element (`bernoulli_`, about 6.7 ns each here): the time-series
net's five dropouts took 7 ms of a 100 ms training step. Here one 64-bit random word gives the keep decisions
of four elements (each 16-bit quarter against a threshold), and the forward and backward are one multiplication
each by the same scaled mask (kept in float, where PyTorch keeps a bool one: 3 bytes more per element). The
same distribution: elements dropped with probability `p` (to 1/65536), the others scaled by 1/(1 - p); identity
outside training, so saved models, prediction and ONNX graphs are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def scaled_keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """1 / (1 - p) where an element is kept, 0 where it is dropped (probability `p`), from the default
    generator (so `torch.manual_seed` makes it repeat)."""
    count = shape.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits random
    quarters = words.view(torch.int16)[:count].view(shape)  # each uniform over [-32768, 32767]
    keep = quarters >= round(p * 65536) - 32768
    return keep.to(dtype).mul_(1 / (1 - p) if p < 1 else 0.0)


class FastDropout(nn.Dropout):
    """`nn.Dropout(p)` with the cheaper mask of `scaled_keep_mask` (not in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * scaled_keep_mask(x.shape, self.p, x.dtype)  # autograd multiplies the gradient by it
