"""Threshold calibration on normal scores, and the calibration of a score recipe."""

import numpy as np
import pytest

from dcvae.scoring import calibrate, calibrate_threshold, parse_score


def test_threshold_at_zero_contamination_is_the_largest_normal_score():
    scores = np.random.default_rng(0).normal(size=500)
    threshold = calibrate_threshold(scores, 0.0)
    assert threshold == scores.max()
    assert not np.any(scores > threshold)


@pytest.mark.parametrize("contamination", [0.01, 0.1, 0.25, 0.5])
def test_threshold_flags_about_the_contamination_share_of_normal_scores(contamination):
    scores = np.random.default_rng(1).exponential(size=1000)
    threshold = calibrate_threshold(scores, contamination)
    flagged = np.mean(scores > threshold)
    assert abs(flagged - contamination) <= 1 / len(scores)


@pytest.mark.parametrize("contamination", [-0.1, 0.6, 1.0, float("nan")])
def test_out_of_range_contamination_is_refused(contamination):
    with pytest.raises(ValueError, match=r"contamination must be in \[0, 0.5\]"):
        calibrate_threshold(np.arange(10.0), contamination)


def test_calibration_refuses_empty_and_non_finite_scores():
    with pytest.raises(ValueError, match="no scores"):
        calibrate_threshold(np.array([]), 0.1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        calibrate_threshold(np.array([0.1, np.nan, 0.3]), 0.1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        calibrate_threshold(np.array([0.1, np.inf]), 0.1)


def test_calibrating_a_recipe_fits_it_on_normal_data_and_thresholds_its_scores():
    rng = np.random.default_rng(0)
    normal = {"elbo": rng.normal(100.0, 5.0, 1000), "kl": rng.normal(10.0, 1.0, 1000)}
    cal = calibrate(parse_score("elbo+kl"), normal, 0.1)
    z = (normal["elbo"] - normal["elbo"].mean()) / normal["elbo"].std() + \
        (normal["kl"] - normal["kl"].mean()) / normal["kl"].std()
    np.testing.assert_allclose(cal.normal_scores, z, rtol=1e-12)
    assert abs(np.mean(cal.normal_scores > cal.threshold) - 0.1) <= 1 / 1000
    with pytest.raises(ValueError, match=r"validation X\[1\] has a non-finite anomaly score"):
        calibrate(parse_score("elbo"), {"elbo": np.array([1.0, np.inf, 2.0])}, 0.1)
