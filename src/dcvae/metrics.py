"""Detection metrics (SPEC "Metrics") and threshold calibration from a contamination rate."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-D and equal")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if len(np.unique(labels)) < 2:
        raise ValueError("ROC-AUC and average precision need both normal (0) and anomalous (1) samples")
    return labels.astype(np.int64), scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for labels 1 = anomaly."""
    return float(skm.roc_auc_score(*_check(labels, scores)))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision with the anomalies as the positive class."""
    return float(skm.average_precision_score(*_check(labels, scores)))


def f1_at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """F1 of the anomaly class when samples scoring strictly above ``threshold`` are flagged."""
    labels, scores = _check(labels, scores)
    return float(skm.f1_score(labels, (scores > threshold).astype(np.int64), zero_division=0.0))


def calibrate_threshold(normal_scores: np.ndarray, contamination: float) -> float:
    """The score above which a fraction ``contamination`` of held-out normal data lies.

    ``contamination`` in [0, 0.5]: 0 puts the threshold at the largest normal score, so no
    validation sample is flagged. The quantile interpolates linearly, as PyOD's does.
    """
    if not 0.0 <= contamination <= 0.5:
        raise ValueError(f"contamination must be in [0, 0.5], got {contamination}")
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("cannot calibrate a threshold on no scores: the validation carve is empty")
    if not np.isfinite(scores).all():
        raise ValueError("cannot calibrate a threshold: some validation scores are NaN or infinite")
    return float(np.quantile(scores, 1.0 - contamination))


def detection_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, average precision and F1 at ``threshold`` in one dict."""
    return {
        "auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "f1": f1_at_threshold(labels, scores, threshold),
        "threshold": float(threshold),
    }
