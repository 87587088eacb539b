"""Frame features and class probabilities from an Ultralytics YOLO classification checkpoint, in one pass.

Preprocessing reproduces Ultralytics' classification predictor exactly (PIL bilinear antialiased resize of
the short side, centre crop, RGB, /255; see `centre_crop`) without importing torchvision, and runs batched under
`inference_mode` with `channels_last` (or on ONNX Runtime, see `onnx_runtime`): several times faster than
`predict(stream=True)` one frame at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.service.errors import LabelConfigError
from utils.service.files import file_inside
from utils.temporal.onnx_graphs import OnnxUnavailable
from utils.video.centre_crop import crop_batch, warm_up
from utils.video.net_rewrites import with_input_divisor, without_chunks
from utils.video.onnx_runtime import OnnxNet, export_path, load_checked

logger = logging.getLogger(__name__)

# Bump when preprocessing changes: it is part of every feature cache key.
PREPROCESSING_ID = "pil-bilinear-aa-shortside-centercrop-rgb-div255-v1"
TORCHVISION_HINT = (
    "this checkpoint pickles torchvision transforms (Ultralytics' classification trainer saves them, e.g. the "
    "released yolov8n-cls.pt), and torchvision does not import with this CPU build of torch. Use a "
    "checkpoint saved without `transforms`, or install torchvision built for this torch"
)


@dataclass(frozen=True)
class EncodedFrames:
    """Penultimate features (N, D) and class probabilities (N, C) of N frames."""

    features: np.ndarray
    probs: np.ndarray


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content, read in chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_checkpoint(
    name: str, model_dir: Path, allowed_roots: tuple[Path, ...], allow_download: bool
) -> Path:
    """The local file for a `model_path` attribute: a path inside an allowed root, or a bare name looked up
    in those roots (model_dir first). Unknown bare names are downloaded into model_dir by Ultralytics only
    when downloads are allowed."""
    roots = tuple(root.resolve() for root in allowed_roots)
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or len(candidate.parts) > 1:
        try:
            return file_inside(candidate if candidate.is_absolute() else model_dir / candidate, roots)
        except ValueError as exc:
            raise LabelConfigError(
                f"model_path {name!r} is {exc}; set MODEL_ROOTS to allow another directory"
            ) from exc
    for root in roots:
        if (root / name).is_file():
            return (root / name).resolve()
    if not allow_download:
        raise LabelConfigError(
            missing_checkpoint(name, model_dir, roots, "downloads are off (YOLO_OFFLINE=1)")
        )
    return _download(name, model_dir, roots)


def missing_checkpoint(name: str, model_dir: Path, roots: tuple[Path, ...], why: str) -> str:
    """What to do when a checkpoint is missing: which file, and where to put it."""
    return (
        f"the YOLO classification checkpoint {name!r} is not in {', '.join(map(str, roots))}, and {why}. "
        f"Copy {name} into {model_dir.resolve()} (MODEL_DIR; e.g. from a machine with internet: "
        f"Ultralytics' released {name}, or your own trained classifier), or set the tag attribute "
        "model_path to a checkpoint inside MODEL_DIR or MODEL_ROOTS"
    )


def _download(name: str, model_dir: Path, roots: tuple[Path, ...]) -> Path:
    from ultralytics.utils.downloads import attempt_download_asset

    target = model_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s into %s", name, model_dir)
    try:
        attempt_download_asset(target)
    except Exception as exc:  # noqa: BLE001 - network failures come in many types
        why = f"downloading it failed (is this machine offline? {exc})"
        raise LabelConfigError(missing_checkpoint(name, model_dir, roots, why)) from exc
    if not target.is_file():
        why = "it is not an Ultralytics asset that can be downloaded"
        raise LabelConfigError(missing_checkpoint(name, model_dir, roots, why))
    return target


def _checkpoint_imgsz(args: object) -> int:
    imgsz = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    if isinstance(imgsz, (list, tuple)):
        imgsz = imgsz[0]
    return int(imgsz or 224)


def preprocess(frames_bgr: list[np.ndarray], size: int) -> torch.Tensor:
    """(B, 3, size, size) float tensor in [0, 1], identical to Ultralytics' classify transforms."""
    return torch.from_numpy(crop_batch(frames_bgr, size)).permute(0, 3, 1, 2).float().div(255.0)


class FusedClassifier(torch.nn.Module):
    """The graph both runtimes run: uint8 RGB crops (B, S, S, 3) -> penultimate features (B, D) and class
    probabilities (B, C). Taking uint8 moves the float conversion off the reader thread and into the
    (multi-threaded) network, and quarters the bytes handed between threads. The backbone is rewritten
    into a cheaper equivalent (`net_rewrites`) that also divides the input by 255."""

    def __init__(self, backbone: torch.nn.Sequential, head: torch.nn.Module):
        super().__init__()
        self.backbone = with_input_divisor(without_chunks(backbone), 255.0)
        self.head = head

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = crops.permute(0, 3, 1, 2).float()  # (B, 3, S, S) in [0, 255]
        pooled = self.head.pool(self.head.conv(self.backbone(x))).flatten(1)  # (B, D)
        return pooled, self.head.linear(pooled).softmax(1)  # (B, D), (B, C)


class YoloFrameEncoder:
    """A loaded classification checkpoint that encodes video frames; build it once per process.

    With `onnx_dir` set, the network runs on ONNX Runtime (exported into that directory once per
    checkpoint, checked against PyTorch); PyTorch serves when ONNX Runtime is missing or the export fails.
    """

    def __init__(
        self, checkpoint: Path, threads: int = 2, batch_size: int = 16, onnx_dir: Path | None = None
    ):
        self.checkpoint = checkpoint
        self.threads = threads
        self.batch_size = batch_size
        model = _load_classifier(checkpoint)
        self.imgsz = _checkpoint_imgsz(getattr(model, "args", {}))
        self.names: dict[int, str] = {int(k): str(v) for k, v in model.names.items()}
        model.fuse(verbose=False)
        model.eval().float()
        self.net = FusedClassifier(
            model.model[:-1].to(memory_format=torch.channels_last),
            model.model[-1].to(memory_format=torch.channels_last),
        ).eval()
        self.encoder_id = f"{checkpoint.name}:{file_digest(checkpoint)[:16]}:imgsz{self.imgsz}"
        warm_up()
        self.onnx: OnnxNet | None = None
        if onnx_dir is not None:
            probe = np.random.default_rng(0).integers(0, 256, (2, self.imgsz, self.imgsz, 3), dtype=np.uint8)
            try:
                self.onnx = load_checked(self.net, probe, export_path(onnx_dir, self.encoder_id), threads)
            except OnnxUnavailable as exc:
                logger.warning("%s: frame features run on PyTorch: %s", checkpoint.name, exc)

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.onnx is not None else "torch"

    @property
    def cache_id(self) -> str:
        """Everything that determines the features: checkpoint content, input size and preprocessing.
        Both runtimes give the same features (within `onnx_runtime.TOLERANCE`), so they share entries."""
        return f"{self.encoder_id}:{PREPROCESSING_ID}"

    def prepare(self, frames_bgr: list[np.ndarray]) -> np.ndarray:
        """Preprocessed input for `forward`; separate so a reader thread can prepare the next batch."""
        return crop_batch(frames_bgr, self.imgsz)

    def forward(self, crops: np.ndarray) -> EncodedFrames:
        """Features and probabilities for prepared crops, `batch_size` images at a time."""
        outputs = list(self.forward_stream([crops]))
        return EncodedFrames(
            np.concatenate([o.features for o in outputs]), np.concatenate([o.probs for o in outputs])
        )

    def forward_stream(self, prepared: Iterable[np.ndarray]) -> Iterator[EncodedFrames]:
        """Features and probabilities for a stream of prepared batches, in order, `batch_size` images at a
        time; on ONNX Runtime the threads run without waiting for each other between batches."""
        chunks = (
            crops[i : i + self.batch_size]
            for crops in prepared
            for i in range(0, len(crops), self.batch_size)
        )
        if self.onnx is not None:
            for features, probs in self.onnx.stream(chunks):
                yield EncodedFrames(features, probs)
            return
        caller_threads = torch.get_num_threads()  # a training encoding its videos runs on its own count
        try:
            for chunk in chunks:
                if torch.get_num_threads() != self.threads:  # ultralytics resets it to 1 process-wide
                    torch.set_num_threads(self.threads)
                with torch.inference_mode():
                    features, probs = self.net(torch.from_numpy(chunk))
                yield EncodedFrames(features.numpy(), probs.numpy())
        finally:
            torch.set_num_threads(caller_threads)

    def encode(self, frames_bgr: list[np.ndarray]) -> EncodedFrames:
        """Features and probabilities for BGR frames (as OpenCV decodes them)."""
        return self.forward(self.prepare(frames_bgr))


def _load_classifier(checkpoint: Path) -> torch.nn.Module:
    """The checkpoint's nn.Module, or LabelConfigError saying why it cannot serve as a frame encoder."""
    try:
        from ultralytics import YOLO

        model = YOLO(str(checkpoint), task="classify").model
    except (ModuleNotFoundError, ImportError, RuntimeError) as exc:
        if "torchvision" in str(exc):
            raise LabelConfigError(f"cannot load {checkpoint.name}: {TORCHVISION_HINT} ({exc})") from exc
        raise LabelConfigError(f"cannot load {checkpoint.name}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint can fail in many ways
        raise LabelConfigError(f"cannot load {checkpoint.name}: {type(exc).__name__}: {exc}") from exc
    from ultralytics.nn.modules.head import Classify

    layers = getattr(model, "model", None)
    if layers is None or not isinstance(layers[-1], Classify):
        raise LabelConfigError(f"{checkpoint.name} is not a YOLO classification checkpoint (*-cls.pt)")
    if any(getattr(layer, "f", -1) != -1 for layer in layers):
        raise LabelConfigError(f"{checkpoint.name}: only sequential classification backbones are supported")
    return model
