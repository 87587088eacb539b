"""Offline YOLO classification checkpoints for tests and benchmarks: built from yaml, BatchNorm calibrated.

Random weights with default BatchNorm statistics give vanishing features, so a few frames run through
in train mode first to estimate them. The checkpoint is saved like Ultralytics does (a pickled module under
"model", `train_args` with imgsz 224) but without torchvision transforms, so it loads on CPU torch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))

from utils.video.encoder import preprocess  # noqa: E402

IMGSZ = 224


def synthetic_frames(count: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Colourful BGR frames with big shapes, enough to calibrate BatchNorm when no video is at hand."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        frame = np.full((240, 320, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        y, x = rng.integers(0, 160), rng.integers(0, 240)
        frame[y : y + 80, x : x + 80] = rng.integers(0, 256, 3)
        frames.append(frame)
    return frames


def build_checkpoint(
    path: Path,
    names: list[str] | None = None,
    frames: Iterable[np.ndarray] | None = None,
    cfg: str = "yolov8n-cls.yaml",
    seed: int = 0,
) -> Path:
    """Save a random-weight classification checkpoint with calibrated BatchNorm to `path`.

    `names` sets the class names (and count; 1000 unnamed classes when None); `frames` (BGR) calibrate
    BatchNorm, synthetic frames when None. The same seed and frames give the same weights.
    """
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(seed)
    model = ClassificationModel(cfg, nc=len(names) if names else 1000, verbose=False)
    if names:
        model.names = dict(enumerate(names))
    _calibrate_batchnorm(model, list(frames) if frames is not None else synthetic_frames())
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"imgsz": IMGSZ, "task": "classify"}}, path)
    return path


def _calibrate_batchnorm(model: torch.nn.Module, frames: Sequence[np.ndarray], batch: int = 16) -> None:
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all calibration batches
    model.train()
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            model(preprocess(list(frames[start : start + batch]), IMGSZ))
    for norm in norms:
        norm.momentum = 0.03
