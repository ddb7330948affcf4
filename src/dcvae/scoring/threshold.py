"""From a score on normal data to a decision: the threshold at a contamination rate.

A detector flags a sample when its score lies above the threshold calibrated on the *normal*
validation carve, for each scoring mode; the benchmark calibrates every recorded score the same
way, through :func:`calibrate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcvae.scoring.family import FittedScore, ScoreRecipe, fit_score


def calibrate_threshold(normal_scores: np.ndarray, contamination: float) -> float:
    """The score above which a fraction ``contamination`` of held-out normal data lies.

    ``contamination`` in [0, 0.5]: 0 puts the threshold at the largest normal score, so no
    validation sample is flagged. The quantile interpolates linearly, as PyOD's does.
    """
    check_contamination(contamination)
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("cannot calibrate a threshold on no scores: the validation carve is empty")
    if not np.isfinite(scores).all():
        raise ValueError("cannot calibrate a threshold: some validation scores are NaN or infinite")
    return float(np.quantile(scores, 1.0 - contamination))


def check_contamination(contamination: float) -> None:
    if not 0.0 <= contamination <= 0.5:
        raise ValueError(f"contamination must be in [0, 0.5], got {contamination}")


@dataclass(frozen=True)
class CalibratedScore:
    """A score fitted on normal data, its values there, and the threshold they give."""

    fitted: FittedScore
    normal_scores: np.ndarray
    threshold: float


def calibrate(recipe: ScoreRecipe, normal_bases: dict[str, np.ndarray], contamination: float,
              *, what: str = "validation X") -> CalibratedScore:
    """Fit ``recipe`` on the base scores of normal data and set its threshold there.

    Raises ValueError naming ``what`` when a score is not finite: a NaN would silently flag
    nothing as anomalous.
    """
    fitted = fit_score(recipe, normal_bases)
    scores = finite_scores(fitted(normal_bases), what)
    return CalibratedScore(fitted, scores, calibrate_threshold(scores, contamination))


def finite_scores(scores: np.ndarray, what: str) -> np.ndarray:
    """Scores pass only when finite: a NaN score would silently flag nothing as anomalous."""
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}[{i}] has a non-finite anomaly score ({scores[i]}; {int(bad.sum())} such "
                         "samples): the input is too extreme for the model's float32 arithmetic, or the "
                         "model's weights are broken")
    return scores
