"""Anomaly scoring: the model's scores (Eq. 17 and its peers), the score family built from them,
the given/marginal condition modes, and threshold calibration on normal data."""

from dcvae.scoring.family import (
    BASE_SCORES,
    DEFAULT_SCORE,
    FittedScore,
    ScoreRecipe,
    base_scores,
    fit_score,
    input_complexity,
    parse_score,
)
from dcvae.scoring.scores import (
    GIVEN,
    MARGINAL,
    SCORES,
    UNCONDITIONAL,
    Explanation,
    Posterior,
    anomaly_scores,
    condition_mode,
    explain,
    kl_to_prior,
    negative_elbo,
    prior_surprise,
    reconstruction_error,
    score_table,
)
from dcvae.scoring.threshold import CalibratedScore, calibrate, calibrate_threshold

__all__ = ["BASE_SCORES", "DEFAULT_SCORE", "GIVEN", "MARGINAL", "SCORES", "UNCONDITIONAL",
           "CalibratedScore", "Explanation", "FittedScore", "Posterior", "ScoreRecipe", "anomaly_scores",
           "base_scores", "calibrate", "calibrate_threshold", "condition_mode", "explain", "fit_score",
           "input_complexity", "kl_to_prior", "negative_elbo", "parse_score", "prior_surprise",
           "reconstruction_error", "score_table"]
