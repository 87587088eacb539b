"""Video decoding, frame-rate alignment, frame encoding and the feature cache."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.timeline import OPOSSUM, SPLICED, session_dir
from fixtures.yolo_checkpoint import build_checkpoint
from utils.service.errors import LabelConfigError, TaskError
from utils.video.encoder import YoloFrameEncoder, resolve_checkpoint
from utils.video.feature_cache import FeatureCache
from utils.video.features import FeatureExtractor, expand_steps
from utils.video.frame_rows import RowWriter
from utils.video.reader import FrameBatches, probe_video
from utils.video.timing import (
    decoded_index_for_ls_frames,
    label_studio_frame_count,
    rates_differ,
    resolve_frame_rate,
)

SHORT_VIDEO = SPLICED / "spliced_train0.mp4"


@pytest.fixture(scope="module")
def encoder() -> YoloFrameEncoder:
    checkpoint = build_checkpoint(session_dir() / "roots" / "synthetic-cls.pt", names=["x", "y", "z"])
    return YoloFrameEncoder(checkpoint, threads=1)


# --- frame rates ---------------------------------------------------------------------------------
def test_frame_rate_comes_from_the_tag_the_task_or_the_default():
    assert resolve_frame_rate(None, {}) == 24.0
    assert resolve_frame_rate("25", {}) == 25.0
    assert resolve_frame_rate("$fps", {"fps": 29.97}) == 29.97
    assert resolve_frame_rate("$fps", {}) == 24.0
    with pytest.raises(ValueError):
        resolve_frame_rate("fast", {})


def test_label_studio_frames_map_to_decoded_frames_by_time_when_rates_differ():
    info = probe_video(OPOSSUM)
    assert info.frame_count == 35 and abs(info.fps - 29.97) < 0.01
    assert rates_differ(25.0, info.fps)
    ls_frames = label_studio_frame_count(35, 25.0, info.fps)
    assert ls_frames == 29  # 35 frames / 29.97 fps = 1.168 s = 29 frames at 25 fps
    index = decoded_index_for_ls_frames(ls_frames, 25.0, info.fps, 35)
    assert index[0] == 0 and index[-1] == 33  # frame 29 at 1.12 s shows decoded frame 33
    assert np.all(np.diff(index) >= 1)  # no decoded frame repeats when slowing 29.97 down to 25


def test_equal_rates_map_one_to_one():
    assert not rates_differ(25.0, 25.0)
    np.testing.assert_array_equal(decoded_index_for_ls_frames(251, 25.0, 25.0, 251), np.arange(251))


# --- decoding -----------------------------------------------------------------------------------
def test_unreadable_and_empty_videos_are_task_errors(tmp_path: Path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (junk, empty):
        with pytest.raises(TaskError, match=path.name):
            probe_video(path)


def test_frame_batches_step_and_count_every_decoded_frame():
    batches = FrameBatches(OPOSSUM, batch_size=4, step=3)
    indices = np.concatenate([i for i, _ in batches])
    assert indices.tolist() == list(range(0, 35, 3))
    assert batches.decoded_count == 35


def test_expand_steps_gives_each_frame_its_nearest_encoded_frame():
    encoded = np.arange(4)[:, None]  # frames 0, 2, 4, 6 of 7
    assert expand_steps(encoded, 2, 7).ravel().tolist() == [0, 1, 1, 2, 2, 3, 3]


# --- encoder ------------------------------------------------------------------------------------
def test_batched_features_equal_single_frame_features(encoder: YoloFrameEncoder):
    _, frames = next(iter(FrameBatches(SHORT_VIDEO, batch_size=6)))
    batched = encoder.encode(frames)
    single = np.concatenate([encoder.encode([f]).features for f in frames])
    np.testing.assert_allclose(batched.features, single, atol=1e-4)
    assert batched.probs.shape == (6, 3)
    np.testing.assert_allclose(batched.probs.sum(1), 1.0, atol=1e-5)


def test_frame_step_encodes_fewer_frames_and_maps_back(encoder: YoloFrameEncoder, tmp_path: Path):
    extractor = FeatureExtractor(encoder, FeatureCache(tmp_path, 10**8))
    full = extractor.features(OPOSSUM, step=1)
    stepped = extractor.features(OPOSSUM, step=2)
    assert stepped.frame_count == full.frame_count == 35
    np.testing.assert_allclose(stepped.features[::2], full.features[::2], atol=1e-4)


def test_checkpoint_outside_allowed_roots_is_refused(tmp_path: Path):
    outside = build_checkpoint(tmp_path / "elsewhere" / "m.pt", names=["a"])
    with pytest.raises(LabelConfigError, match="outside the allowed"):
        resolve_checkpoint(str(outside), tmp_path / "models", (tmp_path / "models",), allow_download=False)


def test_missing_checkpoint_offline_is_a_clear_config_error(tmp_path: Path):
    with pytest.raises(LabelConfigError, match="downloads are off"):
        resolve_checkpoint("yolov8n-cls.pt", tmp_path, (tmp_path,), allow_download=False)


def test_checkpoint_that_needs_a_missing_torchvision_module_fails_with_the_reason(tmp_path: Path):
    module = types.ModuleType("torchvision_stand_in")
    # A class that only exists while the module is importable, like a pickled torchvision transform.
    module.Compose = type("Compose", (), {"__module__": module.__name__, "__qualname__": "Compose"})
    sys.modules[module.__name__] = module
    try:
        checkpoint = tmp_path / "with-transforms.pt"
        torch.save({"model": module.Compose(), "train_args": {}}, checkpoint)
    finally:
        del sys.modules[module.__name__]
    with pytest.raises(LabelConfigError, match="torchvision"):
        YoloFrameEncoder(checkpoint)


# --- feature cache ------------------------------------------------------------------------------
def test_corrupt_or_partial_cache_entries_are_rebuilt(encoder: YoloFrameEncoder, tmp_path: Path):
    extractor = FeatureExtractor(encoder, FeatureCache(tmp_path, 10**8))
    first = np.asarray(extractor.features(OPOSSUM).features)
    (entry,) = tmp_path.glob("*.rows")
    for damage in (b"garbage", entry.read_bytes()[: entry.stat().st_size // 2]):
        entry.write_bytes(damage)
        again = extractor.features(OPOSSUM)
        np.testing.assert_allclose(np.asarray(again.features), first, atol=1e-4)
        assert entry.stat().st_size > len(damage)


def store(cache: FeatureCache, key: str, features: np.ndarray, probs: np.ndarray, step: int = 1) -> None:
    def fill(writer: RowWriter) -> None:
        for first in range(0, len(features), 7):  # batch by batch, as encoding writes them
            writer.append(features[first : first + 7], probs[first : first + 7])
        writer.finish(fps=25.0, step=step, frame_count=len(features) * step)

    cache.write(key, fill)


def test_cache_keeps_features_exact_and_reads_them_by_range(tmp_path: Path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 16)).astype(np.float32) * 1e-8  # tiny scales survive
    probs = rng.dirichlet(np.ones(5), size=50).astype(np.float32)
    cache = FeatureCache(tmp_path, 10**8)
    store(cache, "k", features, probs)

    stored = cache.open("k")
    assert stored.frame_count == 50 and stored.fps == 25.0
    np.testing.assert_array_equal(stored.features[10:20], features[10:20])
    np.testing.assert_array_equal(
        np.asarray(stored.features.take(np.array([3, 3, 49]))), features[[3, 3, 49]]
    )
    np.testing.assert_allclose(np.asarray(stored.probs), probs, rtol=1e-3, atol=1e-4)  # float16 scores
    assert np.concatenate(list(stored.features.chunks(rows=8))).shape == (50, 16)


def test_cache_maps_every_frame_to_its_nearest_encoded_row(tmp_path: Path):
    encoded = np.arange(4, dtype=np.float32)[:, None]  # frames 0, 2, 4, 6 of 8
    cache = FeatureCache(tmp_path, 10**8)
    store(cache, "k", encoded, encoded, step=2)
    stored = cache.open("k")
    assert np.asarray(stored.features).ravel().tolist() == [0, 1, 1, 2, 2, 3, 3, 3]


def test_cache_evicts_least_recently_used_entries_past_its_budget(tmp_path: Path):
    array = np.random.default_rng(0).normal(size=(200, 64)).astype(np.float32)
    cache = FeatureCache(tmp_path, max_bytes=10**9)
    store(cache, "old", array, array)
    size = (tmp_path / "old.rows").stat().st_size
    cache.max_bytes = int(size * 1.5)
    held = cache.open("old")
    store(cache, "new", array + 1, array)
    assert cache.open("old") is None
    assert cache.open("new") is not None
    np.testing.assert_array_equal(held.features[:5], array[:5])  # a reader keeps its evicted entry


def test_cache_removes_entries_of_the_old_format_when_it_writes(tmp_path: Path):
    legacy = tmp_path / ("a" * 40 + ".npz")
    legacy.write_bytes(b"\0" * 1024)
    cache = FeatureCache(tmp_path, max_bytes=10**9)
    store(cache, "new", np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32))
    assert not legacy.exists() and cache.open("new") is not None
