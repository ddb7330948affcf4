"""Detection metrics (SPEC "Metrics"): ROC-AUC, average precision, F1 at a threshold, the ROC curve."""

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


def detection_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, average precision and F1 at ``threshold`` in one dict."""
    return {
        "auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "f1": f1_at_threshold(labels, scores, threshold),
        "threshold": float(threshold),
    }


#: The false-positive rates at which a record keeps its ROC curve (enough to draw it).
ROC_GRID = np.linspace(0.0, 1.0, 51)


def roc_on_grid(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    """The true-positive rate at each false-positive rate of ``ROC_GRID``, 4 decimals."""
    fpr, tpr, _ = skm.roc_curve(*_check(labels, scores))
    return [round(float(v), 4) for v in np.interp(ROC_GRID, fpr, tpr)]
