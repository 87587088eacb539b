"""The sequence net's prediction on ONNX Runtime: about 1.65x less CPU than PyTorch for the same windows, and
window stacks run side by side on their own threads, so a long series keeps every core of the worker busy.

The graph is the staged prediction of `predict_logits` (full-rate stem, coarse convolutions, GRU, the merge
at the coarse rate, head) for windows whose length is a multiple of `DOWNSAMPLE`; the runner pads other
lengths like `SequenceNet.fine` does. GroupNorm is written out as mean and variance of the centred values
(two passes), which matches PyTorch to float rounding. It is exported in memory (no file: a series model is
small and changes with every training) and, before it is trusted, checked against the PyTorch net on probe
windows of a length other than the exported one; a missing `onnxruntime`, a failed export or a graph that
disagrees beyond `TOLERANCE` leaves the caller on PyTorch (`OnnxUnavailable`).
"""

from __future__ import annotations

import copy
import io
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.temporal.onnx_graphs import OnnxUnavailable, export_graph, single_thread_session
from utils.temporal.sequence_net import DOWNSAMPLE, SequenceNet

logger = logging.getLogger(__name__)

# series from this many samples on are worth the export (about half a CPU-second, once per trained net)
MIN_SAMPLES = 2**17
TOLERANCE = (
    1e-4  # largest logit difference from PyTorch, relative to the logits' largest magnitude (at least 1)
)


class TwoPassGroupNorm(nn.Module):
    """`nn.GroupNorm` as plain operators, variance from the centred values: the graph then computes what
    PyTorch computes, whatever ONNX Runtime's InstanceNormalization (opset 17's GroupNorm) does (an earlier
    export through it disagreed with PyTorch)."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.groups, self.eps = norm.num_groups, norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T)
        batch, width, steps = x.shape
        grouped = x.reshape(batch, self.groups, -1)
        centred = grouped - grouped.mean(dim=-1, keepdim=True)
        scaled = centred / torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + self.eps)
        return scaled.reshape(batch, width, steps) * self.weight[:, None] + self.bias[:, None]


class PredictionGraph(nn.Module):
    """Windows (B, T, C), T a multiple of DOWNSAMPLE -> logits (B, T, outputs): `predict_logits`'s stages
    of one stack of windows (the same coarse-rate merge), in operators ONNX knows."""

    def __init__(self, net: SequenceNet):
        super().__init__()
        self.net = copy.deepcopy(net).eval()
        for block in self.net.blocks:
            block.norm = TwoPassGroupNorm(block.norm)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        net = self.net
        fine = net.stem(windows.transpose(1, 2))  # (B, H, T)
        merged = net.merged(fine, net.context(net.coarse(fine)))
        # not `net.logits`: its cut to the input length would be traced as the sample's constant length
        return net.head(net.drop(F.gelu(merged))).transpose(1, 2)


class OnnxSequenceNet:
    """A `WindowRunner` (see `predict_logits`) on ONNX Runtime: each stack of windows runs on one thread of
    its own (one intra-op thread per run), `threads` stacks at once. No per-operator barrier between threads,
    which on a few shared cores keeps the speed when another process takes a core for a while, and one pool
    bounds the threads of all requests together."""

    def __init__(self, graph: bytes, threads: int):
        self.session = single_thread_session(graph, "the sequence graph")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onnx-sequence")

    def run(self, windows: np.ndarray) -> np.ndarray:
        """Logits (B, T, outputs) of windows (B, T, C) of any length (edge-padded to a multiple of 4)."""
        length = windows.shape[1]
        padded = math.ceil(length / DOWNSAMPLE) * DOWNSAMPLE
        if padded != length:
            windows = np.pad(windows, ((0, 0), (0, padded - length), (0, 0)), mode="edge")
        return self.session.run(None, {"windows": np.ascontiguousarray(windows, dtype=np.float32)})[0][
            :, :length
        ]

    def __call__(self, stacks: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._pool.map(self.run, stacks))

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def export(net: SequenceNet) -> bytes:
    """The ONNX graph of `PredictionGraph(net)`, batch and length free."""
    sample = torch.zeros(2, 16 * DOWNSAMPLE, net.stem[0].in_channels)
    buffer = io.BytesIO()
    export_graph(
        PredictionGraph(net),
        sample,
        buffer,
        inputs=["windows"],
        outputs=["logits"],
        dynamic_axes={"windows": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}},
    )
    return buffer.getvalue()


def load_checked(net: SequenceNet, threads: int) -> OnnxSequenceNet:
    """The ONNX Runtime twin of `net`, checked against PyTorch on probe windows (of another length than the
    exported one, and not a multiple of 4); OnnxUnavailable says why it cannot be used."""
    try:
        graph = export(net)
    except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways on unusual layers
        raise OnnxUnavailable(f"export to ONNX failed: {type(exc).__name__}: {exc}") from exc
    onnx_net = OnnxSequenceNet(graph, threads)
    probe = (
        3 * torch.randn(3, 203, net.stem[0].in_channels, generator=torch.Generator().manual_seed(0))
    ).numpy()
    with torch.inference_mode():
        want = net.eval()(torch.from_numpy(probe)).numpy()
    got = onnx_net.run(probe)
    scale = max(1.0, float(np.max(np.abs(want))))
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    if not diff <= TOLERANCE * scale:
        onnx_net.close()
        raise OnnxUnavailable(f"ONNX logits differ from PyTorch's by {diff:.2e} (scale {scale:.2e})")
    logger.info("the sequence net runs on ONNX Runtime (largest probe difference %.1e)", diff)
    return onnx_net
