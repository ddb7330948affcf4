"""The score family: names, complexity correction, typicality, standardised sums, fitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dcvae import AnomalyDetector
from dcvae.data import load_dataset
from dcvae.models import build_model
from dcvae.scoring import anomaly_scores
from dcvae.scoring.family import (
    BASE_SCORES,
    FittedScore,
    base_scores,
    fit_score,
    input_complexity,
    parse_score,
)

SHAPE = (1, 8, 8)


@pytest.mark.parametrize(("name", "terms"), [
    ("recon", [("recon", False)]),
    ("typical-elbo", [("elbo", True)]),
    (" recon + typical-kl ", [("recon", False), ("kl", True)]),
    ("ic-elbo", [("ic-elbo", False)]),
])
def test_names_parse_into_terms(name, terms):
    recipe = parse_score(name)
    assert [(t.base, t.typical) for t in recipe.terms] == terms
    assert recipe.needs_fit == (len(terms) > 1 or terms[0][1])
    assert parse_score(recipe.name) == recipe  # the normal form parses to itself


@pytest.mark.parametrize("name", ["", "mahalanobis", "typical-", "recon+", "recon+recon", "atypical-elbo"])
def test_bad_names_are_refused_with_the_grammar(name):
    with pytest.raises(ValueError, match="score"):
        parse_score(name)


def test_complexity_orders_blank_digit_noise_and_is_in_nats():
    rng = np.random.default_rng(0)
    digits = load_dataset("digits").test.x[:5]
    blank = np.zeros((5, *digits.shape[1:]), dtype=np.uint8)
    noise = rng.integers(0, 256, size=blank.shape, dtype=np.uint8)
    lb, ld, ln = (input_complexity(a) for a in (blank, digits, noise))
    assert (lb < ld.min()).all() and (ld.max() < ln.min()).all()
    # nats of a whole number of bytes
    assert np.allclose(np.mod(lb / math.log(2), 8), 0)
    assert np.array_equal(input_complexity(digits.astype(np.float32) / 255.0), ld)  # floats quantised


def test_complexity_needs_images():
    with pytest.raises(ValueError, match="images"):
        input_complexity(np.zeros((3, 10), dtype=np.float32))


def test_ic_elbo_is_the_elbo_minus_the_complexity():
    torch.manual_seed(0)
    model = build_model("vae", input_shape=SHAPE, hidden_dims=[16], latent_dim=2)
    x = load_dataset("digits").test.x[:20]
    got = base_scores(model, x, None, ("ic-elbo", "elbo"))
    np.testing.assert_allclose(got["ic-elbo"], anomaly_scores(model, x, score="elbo") - input_complexity(x))
    assert list(got) == ["ic-elbo", "elbo"]


def test_typicality_is_two_sided_and_fitted_on_normal_data_only():
    normal = {"elbo": np.array([9.0, 10.0, 11.0, 10.0])}
    fitted = fit_score(parse_score("typical-elbo"), normal)
    mean, sd = fitted.stats["elbo"]
    assert mean == 10.0 and sd == pytest.approx(np.std(normal["elbo"]))
    out = fitted({"elbo": np.array([10.0, 10.0 - 3 * sd, 10.0 + 3 * sd, 10.5])})
    assert out[1] == pytest.approx(out[2]) == pytest.approx(3.0)  # too low is as odd as too high
    assert out[0] == 0.0 and out[3] < out[1]


def test_a_sum_is_invariant_to_each_terms_units():
    rng = np.random.default_rng(0)
    normal = {"recon": rng.normal(5, 1, 200), "kl": rng.normal(30, 4, 200)}
    new = {"recon": rng.normal(5, 2, 50), "kl": rng.normal(30, 8, 50)}
    recipe = parse_score("recon+kl")
    base = fit_score(recipe, normal)(new)
    rescaled = {"recon": normal["recon"], "kl": 1000 * normal["kl"] - 7}
    rescaled_new = {"recon": new["recon"], "kl": 1000 * new["kl"] - 7}
    np.testing.assert_allclose(fit_score(recipe, rescaled)(rescaled_new), base, rtol=1e-9, atol=1e-9)


def test_a_plain_score_needs_no_statistics_and_bad_statistics_are_refused():
    assert fit_score(parse_score("recon"), {}).stats == {}
    recipe = parse_score("typical-elbo")
    with pytest.raises(ValueError, match="elbo"):
        FittedScore.from_dict(recipe, {})
    with pytest.raises(ValueError, match="sd > 0"):
        FittedScore.from_dict(recipe, {"elbo": [1.0, 0.0]})
    with pytest.raises(ValueError, match="finite"):
        fit_score(recipe, {"elbo": np.array([1.0, np.nan])})


@pytest.fixture(scope="module")
def detectors():
    """VAEs trained briefly on the digits 1-9: digit 0 never reaches them."""
    digits = load_dataset("digits")
    normal = digits.train.x[digits.train.y != 0]
    out = {}
    for score in ("elbo", "typical-elbo", "ic-elbo", "recon+kl"):
        out[score] = AnomalyDetector("vae", latent_dim=4, epochs=15, patience=0, progress=False,
                                     anomaly_score=score).fit(normal)
    return out, digits


def _mode_image(det: AnomalyDetector) -> np.ndarray:
    """A too-simple input: the decoder's own image at the prior mean, binarised. Every pixel is
    what the model expects, so its likelihood beats real digits (Nalisnick et al.'s failure)."""
    model = det.model_
    with torch.no_grad():
        mean = model.reconstruction(model.decode(torch.zeros(1, 4), model.condition_onehot(None, 1)))
    return ((mean > 0.5).to(torch.uint8) * 255).numpy().reshape(1, *SHAPE)


def test_simple_and_complex_anomalies_are_flagged_by_the_typicality_score(detectors):
    """Constructed cases: a too-simple image, noise (too complex) and held-out normal digits."""
    dets, digits = detectors
    normal = digits.test.x[digits.test.y != 0][:200]
    noise = np.random.default_rng(0).integers(0, 256, size=(1, *SHAPE), dtype=np.uint8)
    elbo = dets["elbo"]
    simple = _mode_image(elbo)
    # the known failure: the simple image looks *more* normal than the digits under -ELBO
    assert elbo.decision_function(simple)[0] < np.quantile(elbo.decision_function(normal), 0.05)
    assert elbo.decision_function(noise)[0] > np.max(elbo.decision_function(normal))
    typical = dets["typical-elbo"]
    simple = _mode_image(typical)  # the same weights (same seed), so the same image
    typical_normal = typical.decision_function(normal)
    assert typical.decision_function(simple)[0] > np.quantile(typical_normal, 0.9)
    assert typical.decision_function(noise)[0] > np.max(typical_normal)
    # the complexity correction moves the simple image up the ranking
    ic = dets["ic-elbo"]

    def rank(det: AnomalyDetector, x: np.ndarray) -> float:
        return float(np.mean(det.decision_function(normal) < det.decision_function(x)[0]))

    assert rank(ic, simple) > rank(elbo, simple)


def test_fitted_statistics_come_from_the_validation_carve(detectors):
    dets, _ = detectors
    det = dets["typical-elbo"]
    # the statistics are those of the stored validation scores' base: refit from them to check
    mean, sd = det.score_fits_["marginal"].stats["elbo"]
    z = det.validation_scores_["marginal"]
    assert np.all(z >= 0)
    assert np.mean(z) == pytest.approx(np.mean(np.abs(z)))
    # scoring anything, anomalies included, never changes them
    det.decision_function(np.full((3, *SHAPE), 255, dtype=np.uint8))
    assert det.score_fits_["marginal"].stats["elbo"] == (mean, sd)


def test_fitting_sees_no_test_data_or_labels(monkeypatch):
    """fit_score is handed the normal validation carve and nothing else."""
    digits = load_dataset("digits")
    normal = digits.train.x[digits.train.y != 0]
    seen = []
    import dcvae.scoring.threshold as threshold_module

    real = threshold_module.fit_score

    def spy(recipe, bases):
        seen.append({k: v.copy() for k, v in bases.items()})
        return real(recipe, bases)

    monkeypatch.setattr(threshold_module, "fit_score", spy)
    val_x = normal[:100]
    det = AnomalyDetector("vae", latent_dim=2, epochs=1, progress=False, anomaly_score="typical-elbo")
    det.fit(normal[100:], validation=(val_x, None))
    expected = anomaly_scores(det.model_, val_x, score="elbo")
    assert len(seen) == 2  # given and marginal mode
    for bases in seen:  # every base score of the carve, from its one pass
        assert set(bases) == {"recon", "elbo", "kl", "prior", "latent", "latent-knn"}
        assert all(len(v) == len(val_x) for v in bases.values())
        np.testing.assert_allclose(bases["elbo"], expected, rtol=1e-6)
    det.decision_function(digits.test.x)  # test data, anomalies included: no new fit
    assert len(seen) == 2


def test_fitted_scores_survive_save_and_load(detectors, tmp_path):
    dets, digits = detectors
    for score, det in dets.items():
        det.save(tmp_path / score)
        again = AnomalyDetector.load(tmp_path / score)
        assert again.anomaly_score == score
        np.testing.assert_array_equal(again.decision_function(digits.test.x[:50]),
                                      det.decision_function(digits.test.x[:50]))


def test_every_base_score_is_listed():
    assert set(BASE_SCORES) == {"recon", "elbo", "kl", "prior", "latent", "latent-knn",  # the VAEs'
                                "ic-elbo",
                                "distance", "gauss-nll", "isolation", "ecod"}  # the classical detectors'
