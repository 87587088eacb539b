"""The training pass of a bidirectional `nn.GRU` (batch first), with the recurrence's backward written out.

PyTorch's CPU GRU has no fused kernel for training: autograd records a dozen small operations per timestep and
replays them backwards, which made the GRU a third of a sequence-net training step (37 of 131 ms for 16 windows
of 128 coarse steps; oneDNN's LSTM takes 10). Here both directions step together (one batched matrix product
a step), the forward records nothing, and the backward runs the gradient recurrence with the per-step factors
computed for all steps at once beforehand. The same parameters and the same function as `nn.GRU` (to float
rounding), so saved models, prediction and the ONNX graph are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _BidirectionalRecurrence(torch.autograd.Function):
    """h_t = (1 - z) * n + z * h_{t-1} for both directions at once, from the input projections `gates_in`
    (T, 2, B, 3H: reset, update, new; the second direction already reversed in time) and the recurrent
    weights `w_hh` (2, 3H, H) and biases `b_hh` (2, 3H). Returns the states (T, 2, B, H)."""

    @staticmethod
    def forward(ctx: Any, gates_in: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, _, batch, three_h = gates_in.shape
        width = three_h // 3
        states = gates_in.new_zeros(steps + 1, 2, batch, width)
        reset_update = gates_in.new_empty(steps, 2, batch, 2 * width)
        new = gates_in.new_empty(steps, 2, batch, width)
        hidden = gates_in.new_empty(steps, 2, batch, three_h)  # W_hh h + b_hh
        change = gates_in.new_empty(2, batch, width)
        w_hh_t, b_hh = w_hh.transpose(1, 2).contiguous(), b_hh[:, None, :]
        # per-step views made once: the loop runs a few small operations per step, no indexing
        h, n, hid, gate = states.unbind(0), new.unbind(0), hidden.unbind(0), reset_update.unbind(0)
        hid_rz, hid_n = hidden[..., : 2 * width].unbind(0), hidden[..., 2 * width :].unbind(0)
        in_rz, in_n = gates_in[..., : 2 * width].unbind(0), gates_in[..., 2 * width :].unbind(0)
        reset, update = reset_update[..., :width].unbind(0), reset_update[..., width:].unbind(0)
        for t in range(steps):
            torch.baddbmm(b_hh, h[t], w_hh_t, out=hid[t])
            torch.add(in_rz[t], hid_rz[t], out=gate[t]).sigmoid_()
            torch.addcmul(in_n[t], reset[t], hid_n[t], out=n[t]).tanh_()
            torch.sub(h[t], n[t], out=change)
            torch.addcmul(n[t], update[t], change, out=h[t + 1])  # h = n + z * (h_prev - n)
        ctx.save_for_backward(w_hh, states, reset_update, new, hidden[..., 2 * width :])
        return states[1:]

    @staticmethod
    def backward(ctx: Any, grad_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w_hh, states, reset_update, new, hidden_new = ctx.saved_tensors
        steps, width = new.shape[0], new.shape[-1]
        reset, update = reset_update[..., :width], reset_update[..., width:]
        # per-step factors of the chain rule, for all steps at once
        to_new = (1 - update) * (1 - new * new)  # dh -> d(pre-activation of n)
        to_update = (states[:-1] - new) * update * (1 - update)  # dh -> d(pre-activation of z)
        to_reset = hidden_new * reset * (1 - reset)  # d(pre-activation of n) -> d(pre-activation of r)
        grad_hidden = new.new_empty(*new.shape[:3], 3 * width)  # d(W_hh h + b_hh)
        grad_new_in = torch.empty_like(new)  # d(pre-activation of n) = d(its input projection)
        g, g_new = grad_hidden.unbind(0), grad_new_in.unbind(0)
        g_r, g_z = grad_hidden[..., :width].unbind(0), grad_hidden[..., width : 2 * width].unbind(0)
        g_n = grad_hidden[..., 2 * width :].unbind(0)
        f_new, f_update, f_reset = to_new.unbind(0), to_update.unbind(0), to_reset.unbind(0)
        r, z, grad_out = reset.unbind(0), update.unbind(0), grad_states.unbind(0)
        grad_h = torch.zeros_like(states[0])
        for t in range(steps - 1, -1, -1):
            grad_h += grad_out[t]
            torch.mul(grad_h, f_new[t], out=g_new[t])
            torch.mul(g_new[t], f_reset[t], out=g_r[t])
            torch.mul(grad_h, f_update[t], out=g_z[t])
            torch.mul(g_new[t], r[t], out=g_n[t])
            grad_h = torch.baddbmm(grad_h * z[t], g[t], w_hh)
        grad_gates_in = torch.cat([grad_hidden[..., : 2 * width], grad_new_in], dim=-1)
        per_direction = grad_hidden.transpose(0, 1).reshape(2, -1, 3 * width)  # (2, T*B, 3H)
        grad_w_hh = torch.bmm(
            per_direction.transpose(1, 2), states[:-1].transpose(0, 1).reshape(2, -1, width)
        )
        return grad_gates_in, grad_w_hh, per_direction.sum(dim=1)


def bidirectional_gru(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """`gru(x)[0]` for a bidirectional, batch-first `nn.GRU` with biases and without dropout between layers
    (the sequence net's): (B, T, in) -> (B, T, 2H), with gradients for `x` and the GRU's parameters."""
    if not (gru.bidirectional and gru.batch_first and gru.bias) or (gru.num_layers > 1 and gru.dropout):
        raise ValueError(f"{gru} is not a bidirectional, batch-first GRU with biases and no dropout")
    for layer in range(gru.num_layers):

        def weights(name: str, layer: int = layer) -> torch.Tensor:
            return torch.stack([getattr(gru, f"{name}_l{layer}"), getattr(gru, f"{name}_l{layer}_reverse")])

        w_ih, b_ih = weights("weight_ih"), weights("bias_ih")
        sequence = x.transpose(0, 1)  # (T, B, in)
        gates_in = torch.stack(  # (T, 2, B, 3H)
            [
                torch.addmm(b_ih[0], sequence.flatten(0, 1), w_ih[0].T).view(*sequence.shape[:2], -1),
                torch.addmm(b_ih[1], sequence.flip(0).flatten(0, 1), w_ih[1].T).view(*sequence.shape[:2], -1),
            ],
            dim=1,
        )
        states = _BidirectionalRecurrence.apply(gates_in, weights("weight_hh"), weights("bias_hh"))
        x = torch.cat([states[:, 0], states[:, 1].flip(0)], dim=-1).transpose(0, 1)
    return x
