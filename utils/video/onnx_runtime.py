"""The frame encoder's network on ONNX Runtime: about twice as fast as PyTorch on a few CPU cores.

The loaded checkpoint's network is exported once into the cache directory, under a name derived from
everything that determines the graph (checkpoint content, input size, torch version, export format), and
every later process only loads it. Before it is trusted, the exported graph and the PyTorch network encode
the same probe images; a graph that disagrees beyond `TOLERANCE`, a missing `onnxruntime` or a failed
export leaves the caller on PyTorch (`OnnxUnavailable`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from utils.service.files import write_atomic
from utils.temporal.onnx_graphs import OnnxUnavailable, export_graph, single_thread_session

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "uint8-nhwc-rgb-features-probs-opset17-v2"  # v2: net_rewrites
TOLERANCE = 1e-4  # largest feature difference from PyTorch, relative to the features' largest magnitude


def export_path(directory: Path, encoder_id: str) -> Path:
    """Where the graph of `encoder_id` (checkpoint name, content digest, input size) is cached."""
    key = "\x1f".join((encoder_id, EXPORT_FORMAT, torch.__version__))
    return directory / f"encoder-{hashlib.sha256(key.encode()).hexdigest()[:32]}.onnx"


class OnnxNet:
    """Runs an exported encoder graph: uint8 RGB crops (B, S, S, 3) -> features (B, D), probabilities (B, C).

    `threads` batches run side by side, each on one thread of its own (`stream`), rather than each operator
    split over threads: no per-operator barrier, which on a few shared cores keeps the speed up when another
    process takes a core for a while, and bounds the threads of all requests together."""

    def __init__(self, path: Path, threads: int):
        self.session = single_thread_session(path, path.name)
        self.input_name = self.session.get_inputs()[0].name
        self.path = path
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onnx-encoder")

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, probs = self.session.run(None, {self.input_name: np.ascontiguousarray(images)})
        return features, probs

    def stream(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`self(batch)` for each batch, in order, `threads` running at once and one more queued: a thread
        that finishes starts on the next batch at once instead of waiting for the others (no barrier), while
        the caller takes batches only as fast as they are encoded (bounded memory)."""
        pending: deque[Future[tuple[np.ndarray, np.ndarray]]] = deque()
        try:
            for batch in batches:
                pending.append(self._pool.submit(self, batch))
                if len(pending) > self.threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def export(net: torch.nn.Module, sample: torch.Tensor, target: Path) -> None:
    """Write `net`'s graph (batch size free) to `target` atomically, so concurrent workers never read half
    a file."""

    def write(tmp: Path) -> None:
        export_graph(
            net,
            sample,
            tmp,
            inputs=["images"],
            outputs=["features", "probs"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}, "probs": {0: "batch"}},
        )

    write_atomic(target, write)


def load_checked(net: torch.nn.Module, probe: np.ndarray, target: Path, threads: int) -> OnnxNet:
    """The ONNX Runtime twin of `net` (uint8 NHWC images in, like `net`), exported to `target` when not
    cached yet (or when the cached file is unreadable), and checked against `net` on `probe`;
    OnnxUnavailable says why it cannot be used."""
    try:
        onnx_net = OnnxNet(target, threads) if target.is_file() else None
    except OnnxUnavailable as exc:
        logger.warning("cached ONNX graph %s is unusable (%s); exporting it again", target.name, exc)
        target.unlink(missing_ok=True)
        onnx_net = None
    if onnx_net is None:
        try:
            export(net, torch.from_numpy(probe), target)
        except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways on unusual layers
            raise OnnxUnavailable(f"export to ONNX failed: {type(exc).__name__}: {exc}") from exc
        logger.info("exported the frame encoder to %s", target)
        onnx_net = OnnxNet(target, threads)
    with torch.inference_mode():
        want = net(torch.from_numpy(probe))[0].numpy()
    got = onnx_net(probe)[0]
    scale = float(np.max(np.abs(want))) or 1.0
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    if not diff <= TOLERANCE * scale:
        target.unlink(missing_ok=True)  # a stale or broken graph must not be loaded again
        raise OnnxUnavailable(f"ONNX features differ from PyTorch's by {diff:.2e} (scale {scale:.2e})")
    return onnx_net
