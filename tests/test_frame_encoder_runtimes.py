"""The frame encoder on ONNX Runtime and on PyTorch: same features, cached export, fallback to PyTorch."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from control_models.timeline_labels import TimelineLabelsModel
from fixtures.timeline import OPOSSUM, control_of, make_context, session_dir, timeline_config
from fixtures.yolo_checkpoint import build_checkpoint
from utils.service.settings import Settings
from utils.video.encoder import YoloFrameEncoder
from utils.video.features import encode_video

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return build_checkpoint(session_dir() / "roots" / "runtimes-cls.pt", names=["a", "b", "c", "d"])


def test_onnx_runtime_features_equal_pytorch_features_within_1e_4(checkpoint: Path, tmp_path: Path):
    on_torch = YoloFrameEncoder(checkpoint, threads=1)
    on_onnx = YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    assert (on_torch.runtime, on_onnx.runtime) == ("torch", "onnxruntime")
    for step in (1, 2):
        want = encode_video(OPOSSUM, on_torch, step=step)
        got = encode_video(OPOSSUM, on_onnx, step=step)
        assert got.frame_count == want.frame_count == 35
        scale = np.abs(want.features).max()
        assert scale > 1e-3  # BatchNorm-calibrated features, not vanishing ones
        np.testing.assert_allclose(got.features, want.features, rtol=0, atol=1e-4 * scale)
        np.testing.assert_allclose(got.probs, want.probs, rtol=0, atol=1e-5)
    assert on_onnx.cache_id == on_torch.cache_id  # cached features serve either runtime


def test_pytorch_encoding_runs_on_its_threads_and_gives_the_caller_its_own_back(checkpoint: Path) -> None:
    encoder = YoloFrameEncoder(checkpoint, threads=2)
    seen: list[int] = []
    forward = encoder.net.forward
    encoder.net.forward = lambda *args: (seen.append(torch.get_num_threads()), forward(*args))[1]
    torch.set_num_threads(1)  # a training, say
    try:
        encode_video(OPOSSUM, encoder, step=1)
        assert seen and set(seen) == {2}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_export_is_cached_by_checkpoint_content_and_reused(checkpoint: Path, tmp_path: Path):
    YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    written = graph.stat().st_mtime_ns
    again = YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    assert again.runtime == "onnxruntime" and graph.stat().st_mtime_ns == written

    other = build_checkpoint(tmp_path / "other-cls.pt", names=["a", "b", "c", "d"], seed=1)
    YoloFrameEncoder(other, threads=1, onnx_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_a_corrupt_cached_export_is_exported_again(checkpoint: Path, tmp_path: Path):
    YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")
    encoder = YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    assert encoder.runtime == "onnxruntime" and graph.stat().st_size > 1000


def test_without_onnxruntime_pytorch_serves_and_says_why(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with caplog.at_level(logging.WARNING):
        encoder = YoloFrameEncoder(checkpoint, threads=1, onnx_dir=tmp_path)
    assert encoder.runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text
    assert encode_video(OPOSSUM, encoder).frame_count == 35


def test_frame_encoder_setting_forces_pytorch_and_rejects_unknown_values(tmp_path: Path):
    assert Settings.from_env({"FRAME_ENCODER": "torch"}).frame_encoder == "torch"
    assert Settings.from_env({}).frame_encoder == "auto"
    with pytest.raises(ValueError, match="FRAME_ENCODER"):
        Settings.from_env({"FRAME_ENCODER": "tensorrt"})


@pytest.mark.parametrize("setting,runtime", [("auto", "onnxruntime"), ("torch", "torch")])
def test_timeline_control_runs_the_frame_encoder_the_setting_asks_for(
    checkpoint: Path, tmp_path: Path, setting: str, runtime: str
):
    context = make_context(tmp_path / "models", cache_dir=tmp_path / "cache")
    context = dataclasses.replace(
        context, settings=dataclasses.replace(context.settings, frame_encoder=setting)
    )
    config = timeline_config(["a", "b"], model_trainable="true", model_path=checkpoint.name)
    model = TimelineLabelsModel.create(control_of(config), context)
    assert model._encoder().runtime == runtime
    assert bool(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == (setting == "auto")


def test_streamed_batches_come_back_in_order_equal_to_one_batch_at_a_time(checkpoint: Path, tmp_path: Path):
    encoder = YoloFrameEncoder(checkpoint, threads=2, batch_size=3, onnx_dir=tmp_path)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8) for n in (7, 1, 4, 6)]
    streamed = list(encoder.forward_stream(iter(batches)))
    assert [len(e.features) for e in streamed] == [3, 3, 1, 1, 3, 1, 3, 3]  # batch_size chunks, in order
    want = np.concatenate(
        [encoder.onnx(chunk)[0] for b in batches for chunk in (b[:3], b[3:6], b[6:]) if len(chunk)]
    )
    np.testing.assert_array_equal(np.concatenate([e.features for e in streamed]), want)
