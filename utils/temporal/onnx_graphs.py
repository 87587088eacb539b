"""ONNX Runtime for the frame encoder and the sequence net, done one way for both: graphs exported with the
TorchScript exporter at one opset, and sessions that run each call on its calling thread (both callers run
several calls side by side, which on a few shared cores beats splitting each operator over threads: no
per-operator barrier to wait at when another process takes a core for a while). A missing `onnxruntime`, a
failed export or a graph that cannot load raises `OnnxUnavailable`, and the caller stays on PyTorch."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO, Any

import torch

OPSET = 17


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot run this network here; PyTorch runs it instead."""


def export_graph(
    module: torch.nn.Module,
    sample: torch.Tensor,
    target: Path | IO[bytes],
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Write `module`'s graph, traced on `sample`, to `target` (a file path or a buffer)."""
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (sample,),
            str(target) if isinstance(target, Path) else target,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


def single_thread_session(graph: Path | bytes, name: str) -> Any:
    """An ONNX Runtime CPU session on `graph` (a file or its bytes) whose runs stay on the calling thread."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = str(graph) if isinstance(graph, Path) else graph
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad graphs
        raise OnnxUnavailable(f"onnxruntime cannot load {name}: {exc}") from exc
