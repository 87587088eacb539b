"""Long series stay cheap: only the needed CSV columns are read, as float32; normalising makes no float64
copy; prediction runs long windows that cross-fade only where they overlap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from control_models.timeseries_labels import model_input
from utils.temporal import sequence_net
from utils.temporal.sequence_net import PREDICT_WINDOW_FACTOR, SequenceNet, SequenceNetConfig, predict_logits
from utils.temporal.training import window_starts
from utils.timeseries.reader import SeriesSpec, read_series


def test_declared_channels_are_read_as_float32_and_other_columns_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text('Time,note,a,b\n0,x,1.5,2\n1,,oops,4\n2,"y, z",3.5,6\n')
    series = read_series(path, SeriesSpec(time_column="time", channels=("a", "B")))
    assert series.values.dtype == np.float32
    assert series.values.tolist() == [[1.5, 2.0], [2.5, 4.0], [3.5, 6.0]]  # text in a channel: interpolated
    assert series.times.tolist() == [0.0, 1.0, 2.0]


def test_model_input_in_float32_matches_the_float64_computation() -> None:
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(5000, 3)) * [1, 100, 0.01] + [5, -300, 0]).astype(np.float32)
    mean, std = np.array([4.0, -290.0, 0.1]), np.array([2.0, 50.0, 0.02])
    got = model_input(values, mean, std)
    x = values.astype(np.float64)
    want = np.concatenate([(x - mean) / std, (x - x.mean(0)) / x.std(0)], axis=1)
    assert got.dtype == np.float32 and got.shape == (5000, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_long_series_are_predicted_in_long_windows_blended_only_where_they_overlap() -> None:
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=2, n_outputs=3, hidden_size=8, conv_blocks=1)).eval()
    size = 16
    span, overlap = size * PREDICT_WINDOW_FACTOR, size // 2
    values = np.random.default_rng(1).normal(size=(5 * span, 2)).astype(np.float32)
    logits = predict_logits(net, values, size=size)
    assert logits.shape == (5 * span, 3) and np.isfinite(logits).all()
    with torch.inference_mode():
        second = net(torch.from_numpy(values[None, span - overlap : 2 * span - overlap])).numpy()[0]
    inner = slice(overlap, span - overlap)  # samples no other window covers
    np.testing.assert_allclose(logits[span - overlap : 2 * span - overlap][inner], second[inner], atol=1e-5)
    with torch.inference_mode():
        whole = net(torch.from_numpy(values[None, :span])).numpy()[0]
    np.testing.assert_allclose(predict_logits(net, values[:span], size=size), whole, atol=1e-5)


def test_prediction_in_stages_equals_the_forward_pass_of_each_window(monkeypatch) -> None:
    """The GRU over groups of windows changes no prediction: where one window
    alone covers a sample, its logit is that window's forward pass, for any length (not only multiples of 4)."""
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=2, n_outputs=3, hidden_size=8, conv_blocks=2)).eval()
    size = 16
    span, overlap = size * PREDICT_WINDOW_FACTOR, size // 2
    monkeypatch.setattr(
        sequence_net, "GRU_SAMPLES", 3 * span
    )  # groups of 3 windows, convolutions 2 at a time
    rng = np.random.default_rng(2)
    for length in (1, 3, 37, span, 7 * span + 5):
        values = (rng.normal(size=(length, 2)) * 3).astype(np.float32)
        logits = predict_logits(net, values, size=size, batch_size=2)
        starts = window_starts(length, min(span, length), span - overlap)
        covering = np.zeros(length, dtype=int)
        for start in starts:
            covering[start : start + span] += 1
        for start in starts:
            with torch.inference_mode():
                window = net(torch.from_numpy(values[None, start : start + span])).numpy()[0]
            alone = covering[start : start + span] == 1
            assert alone.any()
            np.testing.assert_allclose(logits[start : start + span][alone], window[alone], atol=1e-5)
