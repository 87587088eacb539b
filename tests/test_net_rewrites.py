"""The cheaper rewrite of a fused classification backbone computes what the original computes."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from fixtures.timeline import session_dir
from fixtures.yolo_checkpoint import build_checkpoint
from utils.video.net_rewrites import SplitFreeC2f, with_input_divisor, without_chunks


@functools.cache
def fused_backbone(cfg: str) -> torch.nn.Sequential:
    """Built once per config; tests rewrite deep copies."""
    from ultralytics import YOLO

    checkpoint = build_checkpoint(session_dir() / "roots" / f"rewrites-{cfg}.pt", names=["a", "b"], cfg=cfg)
    return YOLO(str(checkpoint), task="classify").model.fuse(verbose=False).eval().model[:-1]


IMAGES = torch.randint(0, 256, (2, 3, 96, 128), generator=torch.Generator().manual_seed(0)).float()


@pytest.mark.parametrize("cfg", ["yolov8n-cls.yaml", "yolo11n-cls.yaml"])
def test_split_free_c2f_blocks_compute_what_the_chunked_ones_do(cfg: str):
    backbone = fused_backbone(cfg)
    with torch.inference_mode():
        want = copy.deepcopy(backbone)(IMAGES / 255.0)
        rewritten = without_chunks(copy.deepcopy(backbone))
        got = rewritten(IMAGES / 255.0)
    assert sum(isinstance(layer, SplitFreeC2f) for layer in rewritten) >= 4
    scale = want.abs().max()
    assert scale > 1e-3  # calibrated BatchNorm: features that do not vanish
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * scale)


def test_the_input_division_folded_into_the_first_convolution_changes_only_rounding():
    backbone = fused_backbone("yolov8n-cls.yaml")
    with torch.inference_mode():
        want = copy.deepcopy(backbone)(IMAGES / 255.0)
        got = with_input_divisor(copy.deepcopy(backbone), 255.0)(IMAGES)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max())


def test_a_first_layer_that_is_not_a_convolution_divides_the_input_first():
    backbone = torch.nn.Sequential(torch.nn.Flatten())
    images = torch.full((1, 3, 2, 2), 255.0)
    assert torch.equal(with_input_divisor(backbone, 255.0)(images), torch.ones(1, 12))
