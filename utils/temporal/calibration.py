"""Scores that mean something: a region's score estimates the probability that it is right (IoU >= 0.5
with a true region of its label); a task's score is made from them in `task_score`.

Fitted after training on data the net did not train on: the part its early stopping held out
(`training.holdout_split`) pooled with the gate's held-out tasks (`fit(calibrate_on=...)`), whose scores on
tasks the project never trained on are what new tasks will look like. Saved as plain numbers in the model's
JSON metadata: a logistic map from the logit of a decoded region's mean label probability to P(right) (Platt
scaling), fitted on the held-out regions. It is increasing, so regions keep the order of their mean
probability (what separated right from wrong regions before calibration), and only how high the scores are
moves. Its weights are pulled towards the identity map (score = mean probability) by a fixed penalty, so a
few held-out regions move it a little and many as far as they say; without both right and wrong held-out
regions only its intercept moves. With fewer than `MIN_REGIONS` held-out regions the map is not fitted, and
a region's score is the mean probability of its label over its steps. The calibration changes the scores,
never the regions (they are decoded as before).

Why the mean only: a map that also weighed the region's minimum probability and length, fitted on the
20-60 held-out regions a project has, learnt slopes its new tasks did not follow (bench_calibration's models,
watch: AUROC of right against wrong regions within a fold 0.727 with the mean probability, 0.706 with that
map), for a calibration error the mean alone nearly matches (over all time series 0.071, against 0.058; both
within 0.1). Models saved with that map (four weights) keep it.

No temperature is fitted any more: region scores from temperature-scaled probabilities ranked regions worse
than the plain mean (bench_calibration, basicmotions: AUROC 0.93 before calibration, 0.72 after, with fitted
temperatures of 2.7 and 0.5 in its two folds). Models saved with a temperature (`calibration.temperature`)
keep scaling by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from utils.temporal.decoder import Segment, runs

IOU_RIGHT = 0.5  # a region is right when it overlaps a true region of its label at least this much
MIN_REGIONS = 20  # held-out regions below which the map is not fitted (a few tasks tell little)
PRIOR = np.array([0.0, 1.0])  # the identity map: intercept, slope on the logit of the mean
# Penalty on the squared distance from it, in log-likelihood units, half as heavy on the intercept, which
# moves whenever the share of right regions differs from what the probabilities say. Held-out regions come
# from a few tasks and are right or wrong together, weaker evidence than their count (a penalty of 0.5 on the
# intercept let 13 right regions of 4 held-out tasks move every score up). The slope needs right and wrong
# regions to be learnt: with fewer than `MIN_EACH` of either it stays 1, and only the intercept moves.
PRIOR_WEIGHT = np.array([1.0, 2.0])
FIXED = 1e9
MIN_EACH = 3
# Held-out regions whose right ones have the lower mean probabilities would turn the order of the scores
# round; a few tasks cannot be trusted that far, so the slope stays at least this and the order is kept.
MIN_SLOPE = 0.2
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before taking logits


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def scale_probabilities(probs: np.ndarray, temperature: float, exclusive: bool) -> np.ndarray:
    """Per-step probabilities (steps, outputs) with the net's logits divided by `temperature`."""
    if temperature == 1.0:
        return probs
    if exclusive:
        z = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, None)) / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-_logit(probs) / temperature))).astype(np.float32)


def true_segments(truth: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """Per label, the (start, end inclusive) runs of a multi-hot (steps, labels) array."""
    return {
        label: [(s, e) for on, s, e in runs(truth[:, label].astype(np.int64)) if on]
        for label in range(truth.shape[1])
    }


def is_right(segment: Segment, truth: dict[int, list[tuple[int, int]]]) -> bool:
    """Whether the segment overlaps a true run of its label with IoU >= `IOU_RIGHT`."""
    for start, end in truth.get(segment.label, []):
        inter = min(end, segment.end) - max(start, segment.start) + 1
        if inter > 0 and inter / (max(end, segment.end) - min(start, segment.start) + 1) >= IOU_RIGHT:
            return True
    return False


def region_features(segment: Segment, label_probs: np.ndarray) -> np.ndarray:
    """[logit mean, logit min, log length] of the segment's label probabilities over its steps: the map
    uses the first (models saved with the three-feature map use all)."""
    p = label_probs[segment.start : segment.end + 1, segment.label]
    return np.array([_logit(p.mean()), _logit(p.min()), math.log(len(p))], dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, prior: np.ndarray, prior_weight: np.ndarray) -> np.ndarray:
    """Weights (intercept first) of a logistic regression penalised by `prior_weight` times the squared
    distance from `prior` (per weight): Newton steps, halved while they do not lower the penalised loss."""
    design = np.column_stack([np.ones(len(x)), x])

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.logaddexp(0, z).sum() - y @ z + np.sum(prior_weight * (w - prior) ** 2))

    w = prior.astype(np.float64).copy()
    current = loss(w)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -500, 500)))
        gradient = design.T @ (p - y) + 2 * prior_weight * (w - prior)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(2 * prior_weight)
        step = np.linalg.solve(hessian, gradient)
        scale, candidate = 1.0, w - step
        candidate_loss = loss(candidate)
        while candidate_loss > current and scale > 1e-6:
            scale /= 2
            candidate = w - scale * step
            candidate_loss = loss(candidate)
        w, previous, current = candidate, current, candidate_loss
        if previous - current < 1e-10:
            break
    return w


@dataclass(frozen=True)
class Calibration:
    """How a model's probabilities become scores; the default (no metadata) changes nothing."""

    temperature: float = 1.0
    weights: tuple[float, ...] | None = None  # the region map: intercept, then the slopes (see PRIOR)
    regions: int = 0  # held-out regions it was fitted on
    right: int = 0  # of which right

    def scale(self, probs: np.ndarray, exclusive: bool) -> np.ndarray:
        return scale_probabilities(probs, self.temperature, exclusive)

    def region_score(self, segment: Segment, label_probs: np.ndarray) -> float:
        """P(right) of a segment (decoded from the unscaled probabilities), from its temperature-scaled
        `label_probs` (steps, labels)."""
        if self.weights is None:
            return float(label_probs[segment.start : segment.end + 1, segment.label].mean())
        features = region_features(segment, label_probs)[: len(self.weights) - 1]
        z = self.weights[0] + float(np.dot(self.weights[1:], features))
        return 1.0 / (1.0 + math.exp(-z))

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "region_weights": list(self.weights) if self.weights is not None else None,
            "held_out_regions": self.regions,
            "held_out_right": self.right,
            "region_score": "logistic map"
            if self.weights is not None
            else "mean probability (too few regions)",
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Calibration:
        """The calibration saved in a model's metadata; none (older models) is the identity."""
        saved = meta.get("calibration") or {}
        weights = saved.get("region_weights")
        return cls(
            float(saved.get("temperature", 1.0)),
            tuple(float(w) for w in weights) if weights else None,
            int(saved.get("held_out_regions", 0)),
            int(saved.get("held_out_right", 0)),
        )


def fit_calibration(
    probs: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    decode: Callable[[np.ndarray], list[Segment]],
    exclusive: bool,
) -> Calibration:
    """Fit the region map on held-out sequences: per-step `probs` (steps, outputs; exclusive: background
    first) with multi-hot `truth` (steps, labels), and the model's own `decode`."""
    if not probs:
        return Calibration()
    features, right = [], []
    for p, t in zip(probs, truth, strict=True):
        label_probs = p[:, 1:] if exclusive else p
        runs_of = true_segments(t)
        for segment in decode(p):
            features.append(region_features(segment, label_probs))
            right.append(is_right(segment, runs_of))
    hits = int(sum(right))
    if len(right) < MIN_REGIONS:
        return Calibration(1.0, None, len(right), hits)
    x, y = np.array(features)[:, : len(PRIOR) - 1], np.array(right, dtype=np.float64)
    both_kinds = min(hits, len(right) - hits) >= MIN_EACH
    weights = fit_logistic(x, y, PRIOR, PRIOR_WEIGHT if both_kinds else np.r_[PRIOR_WEIGHT[0], FIXED])
    if weights[1] < MIN_SLOPE:  # only the intercept moves, at the least slope that keeps the order
        weights = fit_logistic(x, y, np.r_[0.0, MIN_SLOPE], np.r_[PRIOR_WEIGHT[0], FIXED])
    return Calibration(1.0, tuple(float(w) for w in weights), len(right), hits)
