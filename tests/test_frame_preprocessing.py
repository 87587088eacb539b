"""Frame preprocessing: the fast crop is pixel for pixel Ultralytics' classification transforms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from utils.video.centre_crop import crop_batch


def reference_crop(frame_bgr: np.ndarray, size: int) -> np.ndarray:
    """Ultralytics' classify transforms before /255, the slow way: RGB image, one resize of the short
    side (torchvision's Resize(int) rounding), centre crop."""
    image = Image.fromarray(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
    width, height = image.size
    if width <= height:
        w, h = size, int(size * height / width)
    else:
        w, h = int(size * width / height), size
    image = image.resize((w, h), Image.BILINEAR)
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize(
    "height,width",
    [
        (360, 640),
        (640, 360),
        (1080, 1920),
        (240, 320),
        (224, 300),
        (300, 224),
        (224, 224),
        (100, 150),
        (97, 331),
        (57, 91),  # upscaled
        (223, 225),
        (720, 1280),
        (1081, 1079),
    ],
)
def test_crops_equal_the_single_resize_reference_bit_for_bit(height: int, width: int):
    rng = np.random.default_rng(height * 10_000 + width)
    smooth = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    frames = [
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8),  # noise: every rounding shows
        np.asarray(Image.fromarray(smooth).resize((width, height), Image.BICUBIC)),
    ]
    got = crop_batch(frames, 224)
    assert got.shape == (2, 224, 224, 3) and got.dtype == np.uint8
    for crop, frame in zip(got, frames, strict=True):
        np.testing.assert_array_equal(crop, reference_crop(frame, 224))


def test_a_strided_view_of_a_frame_crops_like_its_copy():
    frame = np.random.default_rng(7).integers(0, 256, (400, 700, 3), dtype=np.uint8)
    view = frame[20:380:1, 10:690]  # rows and columns of a bigger buffer: not contiguous
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(crop_batch([view], 224)[0], reference_crop(view.copy(), 224))
