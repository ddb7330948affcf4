"""Detection metrics on hand-built cases and against scikit-learn; the ROC on its fixed grid."""

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from dcvae.evaluation.metrics import (
    average_precision,
    detection_report,
    f1_at_threshold,
    roc_auc,
    roc_on_grid,
)


def _pairwise_auc(labels, scores):
    """Mann-Whitney: P(anomaly scores above normal) + ½ P(tie), over every (anomaly, normal) pair."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return sum(wins) / len(wins)


def test_roc_auc_on_hand_built_cases():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.full(4, 3.0)) == 0.5
    # anomalies score 1 and 2, normals 1 and 0: pairs 0.5 + 1 + 1 + 1 out of 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([1.0, 1.0, 0.0, 2.0])) == 0.875


def test_roc_auc_matches_the_pairwise_definition_and_sklearn():
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.3).astype(int)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: plenty of ties
    assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    assert roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)


def test_average_precision_on_hand_built_cases():
    labels = np.array([0, 0, 1, 1])
    assert average_precision(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    # anomalies ranked 3rd and 4th: precision 1/3 at the first hit, 2/4 at the second
    assert average_precision(labels, np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx((1 / 3 + 1 / 2) / 2)
    # one anomaly ranked 2nd of 5
    assert average_precision(np.array([0, 1, 0, 0, 0]), np.array([5, 4, 3, 2, 1])) == pytest.approx(0.5)


def test_average_precision_matches_sklearn():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.1).astype(int)
    scores = rng.normal(labels * 1.5, 1.0)
    assert average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-12)


def test_f1_flags_scores_strictly_above_the_threshold():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.4, 0.6, 0.9])
    # > 0.45 flags 0.5, 0.6, 0.9: tp 2, fp 1, fn 1 → P = R = 2/3
    assert f1_at_threshold(labels, scores, 0.45) == pytest.approx(2 / 3)
    # > 0.5 (not >=) flags 0.6, 0.9: P = 1, R = 2/3 → F1 = 0.8
    assert f1_at_threshold(labels, scores, 0.5) == pytest.approx(0.8)
    assert f1_at_threshold(labels, scores, 0.0) == pytest.approx(2 * 3 / (2 * 3 + 2))
    assert f1_at_threshold(labels, scores, 10.0) == 0.0  # nothing flagged


def test_detection_report_bundles_the_metrics():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.4, 0.6, 0.9])
    report = detection_report(labels, scores, 0.5)
    assert report == {"auc": roc_auc(labels, scores),
                      "average_precision": average_precision(labels, scores),
                      "f1": pytest.approx(0.8), "threshold": 0.5}


@pytest.mark.parametrize("metric", [roc_auc, average_precision,
                                    lambda y, s: f1_at_threshold(y, s, 0.5)])
def test_metrics_refuse_bad_labels_and_scores(metric):
    with pytest.raises(ValueError, match=r"both normal \(0\) and anomalous \(1\)"):
        metric(np.zeros(4, dtype=int), np.arange(4.0))
    with pytest.raises(ValueError, match=r"both normal \(0\) and anomalous \(1\)"):
        metric(np.ones(4, dtype=int), np.arange(4.0))
    with pytest.raises(ValueError, match="labels must be 0 .normal. or 1 .anomaly."):
        metric(np.array([0, 1, 2, 1]), np.arange(4.0))
    with pytest.raises(ValueError, match="1 scores are NaN or infinite"):
        metric(np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.4]))
    with pytest.raises(ValueError, match="2 scores are NaN or infinite"):
        metric(np.array([0, 1, 0, 1]), np.array([np.inf, -np.inf, 0.3, 0.4]))
    with pytest.raises(ValueError, match="must be 1-D and equal"):
        metric(np.array([0, 1, 0]), np.arange(4.0))


def test_roc_on_the_grid_goes_from_the_first_tpr_to_one():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.7, 0.8, 0.9])
    tpr = roc_on_grid(labels, scores)
    assert len(tpr) == 51 and tpr[-1] == 1.0
    assert all(a <= b for a, b in zip(tpr, tpr[1:], strict=False))
    assert tpr[0] == 1.0  # both anomalies score above every normal sample: full recall at FPR 0
    assert roc_on_grid(labels, -scores)[0] == 0.0
