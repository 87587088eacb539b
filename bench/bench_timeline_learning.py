"""Learning curve of the TimelineLabels temporal model on the shared spliced videos.

Frame-level macro-F1 on held-out videos (spliced_train6/7) after training on the first 1, 2, 4 and 6
videos, for our training and for a reference-style training on the same features in the same run:
  ours       all annotated tasks at once, features standardized, rare labels weighted, padding masked,
             early stop on held-out frames (best state kept), overlapping windows averaged at prediction;
  reference  the Label Studio YOLO backend's way: one partial fit per submitted annotation (only that
             task, warm-started from the previous fit), raw features, plain BCE with zero padding counted,
             Adam 1e-3, stop when training-data F1 >= 0.95 or accuracy >= 1.0, back-to-back windows.
Both use the same network (Linear-LayerNorm-ReLU-Dropout-BiLSTM-Linear, hidden 32, 16-frame windows,
up to 1000 epochs). Features: yolov8n-cls.yaml with BatchNorm calibrated on the videos (offline).

Run: .venv/bin/python -m bench.bench_timeline_learning [--seeds 2] [--ablations] [--patience 10 5] [--min-gain 0]
(--patience, --min-gain: also ours with another stop rule, to compare with the net's own)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pad_sequence  # noqa: E402

from fixtures.timeline import FROM_NAME, spliced_checkpoint, spliced_labels, spliced_tasks  # noqa: E402
from utils.temporal.decoder import SWITCH_COST_PER_STEP, Segment, decode_multilabel  # noqa: E402
from utils.temporal.timeline_net import (  # noqa: E402
    HOLDOUT_BLOCK,
    TimelineNet,
    TimelineNetConfig,
    TimelineTrainConfig,
    fit,
    predict_proba,
)
from utils.temporal.training import holdout_split, scores  # noqa: E402
from utils.video.encoder import YoloFrameEncoder  # noqa: E402
from utils.video.feature_cache import FeatureCache  # noqa: E402
from utils.video.features import FeatureExtractor  # noqa: E402
from utils.video.regions import regions_to_frame_labels  # noqa: E402

TRAIN_COUNTS = (1, 2, 4, 6)
TEST_VIDEOS = slice(6, 8)
Sequence = tuple[np.ndarray, np.ndarray]


def load_sequences(cache_dir: Path) -> list[Sequence]:
    encoder = YoloFrameEncoder(spliced_checkpoint(), threads=2)
    extractor = FeatureExtractor(encoder, FeatureCache(cache_dir, 10**9))
    sequences = []
    for task in spliced_tasks():
        video = extractor.features(Path(task["data"]["video"]))
        target = regions_to_frame_labels(
            task["annotations"][0]["result"], FROM_NAME, spliced_labels(), video.frame_count
        )
        sequences.append((video.features, target.astype(np.float32)))
    return sequences


def score(probs: list[np.ndarray], test: list[Sequence]) -> float:
    return macro_f1(np.concatenate([y for _, y in test]), np.concatenate(probs) >= 0.5)


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    return scores(truth, predicted)["macro_f1"]


def train_ours(train: list[Sequence], test: list[Sequence], seed: int, **changes) -> tuple[float, float]:
    net, seconds = fit_ours(train, seed, **changes)
    return score([predict_proba(net, x, 16) for x, _ in test], test), seconds


def fit_ours(train: list[Sequence], seed: int, **changes) -> tuple[TimelineNet, float]:
    torch.manual_seed(seed)
    net = TimelineNet(TimelineNetConfig(train[0][0].shape[1], train[0][1].shape[1]))
    standardize = changes.pop("standardize", True)
    on_training_data = changes.pop("stop_on_training_data", False)
    if standardize:
        net.set_standardization([x for x, _ in train])
    started = time.perf_counter()
    xs, ys = [x for x, _ in train], [y for _, y in train]
    train_set, val_set = holdout_split(xs, ys, block=HOLDOUT_BLOCK, min_tasks=None, seed=seed)
    if on_training_data:
        train_set = val_set = (xs, ys)
    fit(net, train_set, val_set, TimelineTrainConfig(seed=seed, **changes))
    return net, time.perf_counter() - started


def decoding_report(train: list[Sequence], test: list[Sequence]) -> None:
    """Predicted regions per true region and frame macro-F1 of the decoded regions on the held-out videos,
    through the decoder TimelineLabels uses (threshold 0.5, 3 frames minimum, gaps of 2 bridged), for a few
    switch costs (0 = the plain threshold)."""
    net, _ = fit_ours(train, seed=0)
    probs = [predict_proba(net, x, 16) for x, _ in test]
    true_regions = sum(len(decode(y, 0.0)) for _, y in test)
    print(f"decoded held-out videos ({true_regions} true regions), trained on {len(train)} videos, seed 0")
    for cost in (0.0, SWITCH_COST_PER_STEP * 3, 4.0):  # none, TimelineLabels' default, strong
        decoded = [decode(p, cost) for p in probs]
        masks = [
            segments_mask(segments, len(p), p.shape[1]) for segments, p in zip(decoded, probs, strict=True)
        ]
        f1 = macro_f1(np.concatenate([y for _, y in test]), np.concatenate(masks))
        count = sum(len(segments) for segments in decoded)
        print(
            f"  switch cost {cost:4.1f}: {count / true_regions:.2f} regions per true region, macro-F1 {f1:.3f}"
        )


def decode(probs: np.ndarray, switch_cost: float) -> list[Segment]:
    labels = probs.shape[1]
    return decode_multilabel(probs, 0.5, np.full(labels, switch_cost), np.full(labels, 3), np.full(labels, 2))


def segments_mask(segments: list[Segment], frames: int, labels: int) -> np.ndarray:
    mask = np.zeros((frames, labels), dtype=bool)
    for segment in segments:
        mask[segment.start : segment.end + 1, segment.label] = True
    return mask


# --- the reference's training, reproduced for comparison ------------------------------------------
def reference_chunks(x: np.ndarray, size: int, stride: int) -> torch.Tensor:
    return pad_sequence(
        [torch.as_tensor(x[i : i + size]) for i in range(0, len(x), stride)], batch_first=True
    )


def reference_partial_fit(net: TimelineNet, optimizer, x: np.ndarray, y: np.ndarray, size: int = 16) -> None:
    """One annotation's training: half-overlapping padded windows, stop on training-data scores."""
    xs, ys = reference_chunks(x, size, size // 2), reference_chunks(y, size, size // 2)
    criterion = nn.BCEWithLogitsLoss()
    for _ in range(1000):
        net.train()
        for batch in torch.randperm(len(xs)).split(32):
            optimizer.zero_grad()
            criterion(net(xs[batch]), ys[batch]).backward()
            optimizer.step()
        predicted = reference_predict(net, x) >= 0.5
        accuracy = float(np.mean(np.all(predicted == y.astype(bool), axis=1)))
        if macro_f1(y, predicted) >= 0.95 or accuracy >= 1.0:
            break


@torch.inference_mode()
def reference_predict(net: TimelineNet, x: np.ndarray, size: int = 16) -> np.ndarray:
    net.eval()
    probs = torch.sigmoid(net(reference_chunks(x, size, size)))
    return probs.reshape(-1, probs.shape[-1])[: len(x)].numpy()


def train_reference(train: list[Sequence], test: list[Sequence], seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    net = TimelineNet(TimelineNetConfig(train[0][0].shape[1], train[0][1].shape[1]))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    started = time.perf_counter()
    for x, y in train:  # one ANNOTATION_CREATED event per task, each trains on that task only
        reference_partial_fit(net, optimizer, x, y)
    seconds = time.perf_counter() - started
    return score([reference_predict(net, x) for x, _ in test], test), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--ablations", action="store_true", help="also ours without each improvement")
    parser.add_argument("--decoding-only", action="store_true", help="only the decoded-regions report")
    parser.add_argument(
        "--patience", type=int, nargs="*", default=[], help="also ours stopping after this many stale epochs"
    )
    parser.add_argument(
        "--min-gain",
        type=float,
        nargs="*",
        default=[],
        help="also ours counting held-out loss gains from this size (the net's own: 1e-3)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the service trains (TRAIN_THREADS)

    with tempfile.TemporaryDirectory() as tmp:
        sequences = load_sequences(Path(tmp))
    test = sequences[TEST_VIDEOS]
    decoding_report(sequences[: TRAIN_COUNTS[-1]], test)
    if args.decoding_only:
        return
    variants = {"ours": {}, "reference-style": None}
    if args.ablations:
        variants |= {
            "ours, no label weights": {"max_pos_weight": 1.0},
            "ours, no standardization": {"standardize": False},
            "ours, stop on training data": {"stop_on_training_data": True, "f1_threshold": 0.95},
        }
    variants |= {f"ours, patience {p}": {"patience": p} for p in args.patience}
    variants |= {f"ours, min gain {g:g}": {"min_gain": g} for g in args.min_gain}
    print(f"macro-F1 on {len(test)} held-out videos, mean over {args.seeds} seeds (train seconds)")
    print(f"{'videos':>6} " + " ".join(f"{name:>30}" for name in variants))
    for count in TRAIN_COUNTS:
        cells = []
        for changes in variants.values():
            runs = [
                train_reference(sequences[:count], test, seed)
                if changes is None
                else train_ours(sequences[:count], test, seed, **changes)
                for seed in range(args.seeds)
            ]
            f1s, secs = zip(*runs, strict=True)
            cells.append(f"{np.mean(f1s):.3f} (min {np.min(f1s):.3f}, {np.mean(secs):5.1f} s)")
        print(f"{count:>6} " + " ".join(f"{cell:>30}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
