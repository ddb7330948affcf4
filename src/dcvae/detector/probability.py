"""PyOD's ways to read anomaly scores as probabilities and as confidence, on a reference sample of
normal scores (the detector passes its normal validation carve)."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf
from scipy.stats import binom

PROBA_METHODS = ("linear", "unify")


def anomaly_probability(scores: np.ndarray, normal: np.ndarray, method: str) -> np.ndarray:
    """P(anomaly) per score, in [0, 1]: "linear" min-max scales on the normal scores' range;
    "unify" (Kriegel et al. 2011) is erf((s − mean) / (sd·√2)) with their mean and sd. Both are
    clipped to [0, 1], as in PyOD."""
    if method not in PROBA_METHODS:
        raise ValueError(f"method must be one of {list(PROBA_METHODS)}, got {method!r}")
    if method == "linear":
        span = float(normal.max() - normal.min())
        probability = (scores - normal.min()) / (span if span > 0 else 1.0)
    else:
        probability = erf((scores - normal.mean()) / (max(float(normal.std()), 1e-12) * math.sqrt(2.0)))
    return np.clip(probability, 0.0, 1.0)


def prediction_confidence(scores: np.ndarray, normal: np.ndarray, contamination: float,
                          flagged: np.ndarray) -> np.ndarray:
    """ExCeeD (Perini, Vercruyssen & Davis 2020): how likely each 0/1 prediction stays the same
    under another training sample, in [0, 1]. With n reference scores, of which k lie at or below
    a score, the score's outlyingness is p = (1 + k) / (2 + n); the confidence of a flag is
    P(Binomial(n, p) > n − ⌊n·contamination⌋), and of a non-flag its complement."""
    reference = np.sort(normal)
    n = len(reference)
    below = np.searchsorted(reference, scores, side="right")
    outlyingness = (1.0 + below) / (2.0 + n)
    confidence = 1.0 - binom.cdf(n - int(n * contamination), n, outlyingness)
    return np.where(flagged, confidence, 1.0 - confidence)
