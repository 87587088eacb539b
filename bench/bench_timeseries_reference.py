"""A reference-style baseline (HumanSignal timeseries_segmenter's design, re-written from its description):
fc(128) + LayerNorm + 2-layer BiLSTM(64), 50-sample windows at 50% overlap over all tasks concatenated
(windows cross task borders), raw unscaled channels, class-weighted cross-entropy with background, stop when
the *training* balanced accuracy >= 0.85 and the smallest class F1 >= 0.70, argmax per sample, consecutive
equal labels grouped without smoothing. Used only as the baseline of bench_timeseries_quality.py."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

SEQUENCE_SIZE, HIDDEN, FC, BATCH = 50, 64, 128, 16


class ReferenceLSTM(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc = nn.Linear(n_in, FC)
        self.norm = nn.LayerNorm(FC)
        self.drop = nn.Dropout(0.3)
        self.lstm = nn.LSTM(FC, HIDDEN, 2, batch_first=True, bidirectional=True, dropout=0.3)
        self.out = nn.Linear(2 * HIDDEN, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.drop(self.norm(torch.relu(self.fc(x)))))
        return self.out(self.drop(h))


def _starts(n: int) -> list[int]:
    starts = list(range(0, n - SEQUENCE_SIZE + 1, SEQUENCE_SIZE // 2))
    if starts[-1] + SEQUENCE_SIZE < n:
        starts.append(n - SEQUENCE_SIZE)
    return starts


def _train_metrics(model: ReferenceLSTM, x: torch.Tensor, y: torch.Tensor, n_out: int) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(-1).flatten().numpy()
    truth = y.flatten().numpy()
    recalls, f1s = [], []
    for c in range(n_out):
        support = (truth == c).sum()
        if support == 0:
            continue
        tp = ((pred == c) & (truth == c)).sum()
        recalls.append(tp / support)
        f1s.append(2 * tp / max((pred == c).sum() + support, 1))
    return float(np.mean(recalls)), float(min(f1s))


def fit_reference(
    values: list[np.ndarray],
    labels: list[np.ndarray],
    n_out: int,
    max_epochs: int = 60,
    max_seconds: float = 300,
) -> ReferenceLSTM:
    torch.manual_seed(0)
    x_all, y_all = np.concatenate(values), np.concatenate(labels)
    starts = _starts(len(x_all))
    x = torch.tensor(np.stack([x_all[s : s + SEQUENCE_SIZE] for s in starts]), dtype=torch.float32)
    y = torch.tensor(np.stack([y_all[s : s + SEQUENCE_SIZE] for s in starts]), dtype=torch.long)
    counts = np.bincount(y_all, minlength=n_out).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    model = ReferenceLSTM(x.shape[-1], n_out)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    started = time.monotonic()
    for _ in range(max_epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]).reshape(-1, n_out), y[idx].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        balanced, min_f1 = _train_metrics(model, x, y, n_out)
        if (balanced >= 0.85 and min_f1 >= 0.70) or time.monotonic() - started > max_seconds:
            break
    return model


def predict_reference(model: ReferenceLSTM, values: np.ndarray) -> np.ndarray:
    """Per-sample class ids from half-overlapping windows, softmax-averaged."""
    model.eval()
    n = len(values)
    total = np.zeros((n, model.out.out_features), dtype=np.float32)
    counts = np.zeros((n, 1), dtype=np.float32)
    with torch.no_grad():
        for s in _starts(n):
            window = torch.tensor(values[None, s : s + SEQUENCE_SIZE], dtype=torch.float32)
            total[s : s + SEQUENCE_SIZE] += torch.softmax(model(window), -1)[0].numpy()
            counts[s : s + SEQUENCE_SIZE] += 1
    return (total / counts).argmax(-1)
