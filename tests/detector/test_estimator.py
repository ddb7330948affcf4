"""AnomalyDetector: fit, score, flag, save and load on digits; every bad input gets a named error."""

import numpy as np
import pytest

from dcvae.config import ConfigError
from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector, NotFittedError
from dcvae.evaluation.metrics import roc_auc

SMALL = {"hidden_dims": (32, 16), "latent_dim": 4, "progress": False}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def fitted(digits):
    """dCVAE on every digit, the digit as condition, 2 epochs."""
    return AnomalyDetector("dcvae", epochs=2, **SMALL).fit(digits.train.x, c=digits.train.y)


def test_fit_and_score_shapes(fitted, digits):
    assert fitted.model_.config.condition_names == tuple(str(i) for i in range(10))
    assert fitted.model_.config.input_shape == (1, 8, 8)
    assert len(fitted.history_.epochs) == 2
    scores = fitted.decision_function(digits.test.x)
    assert scores.shape == (len(digits.test.x),) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    flags = fitted.predict(digits.test.x)
    assert flags.shape == scores.shape and set(np.unique(flags)) <= {0, 1}
    assert np.array_equal(fitted.score_samples(digits.test.x), -scores)  # scikit-learn's sign


def test_predict_flags_exactly_the_scores_above_the_matching_threshold(fitted, digits):
    x, c = digits.test.x, digits.test.y
    marginal, given = fitted.decision_function(x), fitted.decision_function(x, c)
    assert fitted.thresholds_["marginal"] != fitted.thresholds_["given"]
    assert fitted.threshold_ == fitted.thresholds_["marginal"]
    assert np.array_equal(fitted.predict(x), (marginal > fitted.thresholds_["marginal"]).astype(int))
    assert np.array_equal(fitted.predict(x, c), (given > fitted.thresholds_["given"]).astype(int))
    assert np.all(marginal <= given + 1e-9)  # the minimum over conditions includes the given one


def test_thresholds_flag_the_contamination_share_of_the_validation_carve(fitted):
    for mode in ("given", "marginal"):
        scores = fitted.validation_scores_[mode]
        flagged = np.mean(scores > fitted.thresholds_[mode])
        assert abs(flagged - 0.05) <= 1 / len(scores), mode


def test_a_held_out_digit_is_detected_above_chance(digits):
    """The detector's purpose on real data: digit 4, unseen in training, mostly scores higher."""
    normal = digits.train.y != 4
    det = AnomalyDetector("vae", epochs=10, **SMALL).fit(digits.train.x[normal])
    scores = det.decision_function(digits.test.x)
    assert roc_auc((digits.test.y == 4).astype(int), scores) > 0.7


def test_save_load_gives_identical_scores_and_flags(fitted, digits, tmp_path):
    fitted.save(tmp_path / "det")
    loaded = AnomalyDetector.load(tmp_path / "det")
    x, c = digits.test.x, digits.test.y
    assert np.array_equal(loaded.decision_function(x), fitted.decision_function(x))
    assert np.array_equal(loaded.decision_function(x, c), fitted.decision_function(x, c))
    assert np.array_equal(loaded.predict(x), fitted.predict(x))
    assert np.array_equal(loaded.predict(x, c), fitted.predict(x, c))
    assert loaded.thresholds_ == fitted.thresholds_
    assert (loaded.anomaly_score_, loaded.contamination) == (fitted.anomaly_score_, fitted.contamination)
    assert fitted.anomaly_score is None and fitted.anomaly_score_ == "recon"  # the model's default
    # the loaded detector states the resolved settings (the model's defaults, the likelihood chosen)
    def settings(det):
        resolved = ("params", "likelihood", "anomaly_score", "backbone")
        return {k: v for k, v in det.get_params().items() if k not in resolved}

    assert settings(loaded) == settings(fitted)
    assert fitted.backbone is None and loaded.backbone == "mlp"  # the VAE's own, resolved on load
    assert loaded.params == {"beta": 1.0, "gamma": 0.0, "prior_components": 1, "prior_means": "learned",
                             "prior_radius": 3.0, "separation": 0.0, "encoder_condition": True,
                             "mismatch": 0.0}
    assert loaded.anomaly_score == "recon"
    assert loaded.likelihood == fitted.model_.config.likelihood == "bernoulli"
    assert loaded.history_.to_dict() == fitted.history_.to_dict()
    for mode in ("given", "marginal"):
        assert np.array_equal(loaded.validation_scores_[mode], fitted.validation_scores_[mode])
    assert np.array_equal(loaded.decision_scores_, fitted.decision_scores_)
    assert np.array_equal(loaded.labels_, fitted.labels_)


def test_zero_contamination_flags_no_validation_sample(digits):
    det = AnomalyDetector("vae", epochs=1, contamination=0.0, **SMALL)
    det.fit(digits.train.x[:300])
    assert det.threshold_ == det.validation_scores_["marginal"].max()
    assert not np.any(det.validation_scores_["marginal"] > det.threshold_)


def test_one_sample_scores_as_it_does_inside_a_batch(fitted, digits):
    x, c = digits.test.x, digits.test.y
    batch_marginal, batch_given = fitted.decision_function(x), fitted.decision_function(x, c)
    for i in (0, 17):
        np.testing.assert_allclose(fitted.decision_function(x[i:i + 1]), batch_marginal[i:i + 1],
                                   rtol=1e-5)
        np.testing.assert_allclose(fitted.decision_function(x[i:i + 1], c[i:i + 1]),
                                   batch_given[i:i + 1], rtol=1e-5)


def test_equivalent_encodings_of_the_same_images_score_alike(fitted, digits):
    x = digits.test.x[:40]
    reference = fitted.decision_function(x)
    assert np.array_equal(fitted.decision_function(x[:, 0]), reference)  # (n, H, W)
    assert np.array_equal(fitted.decision_function(x.astype(np.int64)), reference)  # ints 0..255
    np.testing.assert_allclose(fitted.decision_function(x / 255.0), reference, rtol=1e-5)  # [0, 1]


def test_given_mode_accepts_the_training_labels_in_any_form(fitted, digits):
    x, y = digits.test.x[:30], digits.test.y[:30]
    reference = fitted.decision_function(x, y)
    assert np.array_equal(fitted.decision_function(x, y.astype(str)), reference)
    assert np.array_equal(fitted.decision_function(x, y.astype(float)), reference)
    assert np.array_equal(fitted.decision_function(x, list(y)), reference)


def test_tabular_data_outside_the_unit_interval_gets_a_gaussian_likelihood():
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, size=(400, 6)) @ rng.normal(size=(6, 6))
    det = AnomalyDetector("vae", epochs=3, latent_dim=2, hidden_dims=(32, 16), progress=False).fit(x)
    assert det.model_.config.likelihood == "gaussian"
    inliers = rng.normal(50.0, 10.0, size=(50, 6)) @ rng.normal(size=(6, 6))
    scores = det.decision_function(inliers)
    assert np.isfinite(scores).all()
    far = x[:50] + 1000.0
    assert np.median(det.decision_function(far)) > np.median(det.decision_function(x[:50]))
    # a table min-max scaled to [0, 1] is not pixels (issue 15, item 2): Gaussian too, so test rows
    # beyond the training range are scored, not refused
    unit = AnomalyDetector("vae", epochs=1, **SMALL).fit(rng.random((100, 6)))
    assert unit.model_.config.likelihood == "gaussian"
    beyond = np.vstack([rng.random((5, 6)), np.full((1, 6), 1.5), np.full((1, 6), -0.5)])
    assert np.isfinite(unit.decision_function(beyond)).all()


def test_bernoulli_likelihood_refuses_data_outside_the_unit_interval():
    with pytest.raises(ValueError, match="outside \\[0, 1\\], which a Bernoulli likelihood cannot model"):
        AnomalyDetector("vae", likelihood="bernoulli", **SMALL).fit(np.full((10, 3), 5.0))


# --------------------------------------------------------------------------- bad input


def _bad_inputs():
    rng = np.random.default_rng(0)
    images = rng.random((10, 1, 8, 8))
    nan, inf = images.copy(), images.copy()
    nan[3, 0, 2, 2], inf[5, 0, 1, 1] = np.nan, np.inf
    return {
        "nan": (nan, r"1 NaN or infinite values \(first at index \(3, 0, 2, 2\)\)"),
        "inf": (inf, r"1 NaN or infinite values \(first at index \(5, 0, 1, 1\)\)"),
        "1-D": (np.zeros(64), r"got 1-D shape \(64,\)\. Reshape your data: for one sample, pass x\[None\]"),
        "5-D": (np.zeros((2, 1, 1, 8, 8)), "got 5-D shape"),
        "empty": (np.zeros((0, 1, 8, 8)), "it has 0 samples"),
        "strings": (np.array([["a", "b"], ["c", "d"]]), "must be numeric .* got dtype <U1"),
        "objects": (np.array([[1, "a"], [2, 3]], dtype=object), "holds a value that is not a number"),
        "channels-last": (np.zeros((4, 8, 8, 3), dtype=np.uint8), "looks channels-last"),
        "float above 1": (images * 255.0, r"float images must lie in \[0, 1\]"),
        "float below 0": (images - 0.5, r"float images must lie in \[0, 1\]"),
        "int above 255": (np.full((3, 1, 8, 8), 300), "integer images must lie in 0-255, found 300..300"),
        "negative int": (np.full((3, 1, 8, 8), -1), "integer images must lie in 0-255"),
        "ragged": ([[1.0, 2.0], [3.0]], "cannot be read as an array"),
    }


BAD = _bad_inputs()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_to_decision_function_is_named(fitted, case):
    x, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        fitted.decision_function(x)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_to_fit_is_named_before_any_training(case):
    x, message = BAD[case]
    det = AnomalyDetector("vae", epochs=1, **SMALL)
    with pytest.raises(ValueError, match=message):
        det.fit(x)
    assert not hasattr(det, "model_")


def test_a_condition_never_seen_in_training_is_refused_in_given_mode(fitted, digits):
    x = digits.test.x[:3]
    with pytest.raises(ValueError, match=r"never seen in training: \['42'\].*Leave the conditions out to "
                                         "score in marginal mode"):
        fitted.decision_function(x, np.array([1, 42, 2]))
    with pytest.raises(ValueError, match="one condition per sample"):
        fitted.decision_function(x, np.array([1, 2]))


def test_scoring_another_shape_than_the_trained_one_is_refused(fitted):
    message = r"sample shape \(1, 7, 7\), but the model was trained on \(1, 8, 8\)"
    with pytest.raises(ValueError, match=message):
        fitted.decision_function(np.zeros((2, 1, 7, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"sample shape \(64,\)"):
        fitted.decision_function(np.zeros((2, 64), dtype=np.float32))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"model": "dcvea"}, ValueError, "unknown model 'dcvea' \\(did you mean 'dcvae'\\?\\)"),
    ({"model": "vae", "params": {"beta": 4.0}}, ConfigError,
     r"unknown hyper-parameter\(s\) \['beta'\] for model 'vae'"),
    ({"model": "dcvae", "params": {"alpha": 1.0}}, ConfigError, r"unknown hyper-parameter\(s\) \['alpha'\]"),
    ({"model": "beta-tcvae", "params": {"beta": 6.0}}, ConfigError,
     r"unknown hyper-parameter\(s\) \['beta'\] for model 'beta-tcvae'; it takes \['dimwise_kl_weight', "
     r"'mi_weight', 'tc_weight'\]"),
    ({"params": [("beta", 3.0)]}, ConfigError, "params must be a dict"),
    ({"params": {"latent_dim": 4}}, ConfigError, r"\['latent_dim'\] are arguments of the detector itself"),
    ({"params": {"input_shape": (1, 8, 8)}}, ConfigError, r"\['input_shape'\] are arguments"),
    ({"anomaly_score": "mahalanobis"}, ValueError, "unknown score 'mahalanobis'"),
    ({"contamination": 0.7}, ValueError, r"contamination must be in \[0, 0.5\], got 0.7"),
    ({"contamination": -0.1}, ValueError, r"contamination must be in \[0, 0.5\]"),
    ({"likelihood": "poisson"}, ValueError, "likelihood must be 'auto'"),
    ({"validation_fraction": 1.0}, ValueError, r"validation_fraction must be in \(0, 1\)"),
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"lr": "fast"}, ConfigError, "training.lr: expected a number, got str 'fast'"),
    ({"latent_dim": "16"}, ConfigError, "dcvae-prior.latent_dim: expected an integer, got str '16'"),
    ({"latent_dim": 0}, ConfigError, "latent_dim must be >= 1"),
    ({"backbone": "transformer"}, ConfigError, "backbone must be one of"),
    ({"params": {"beta": -1.0}}, ConfigError, "beta must be >= 0"),
    ({"params": {"beta": float("nan")}}, ConfigError, "dcvae-prior.beta: expected a finite number"),
])
def test_bad_settings_are_refused_by_fit_before_any_training(kwargs, error, message, digits):
    det = AnomalyDetector(**kwargs)  # scikit-learn's rule: the constructor only stores
    assert all(getattr(det, k) is v for k, v in kwargs.items())
    with pytest.raises(error, match=message):
        det.check_settings()
    with pytest.raises(error, match=message):
        det.fit(digits.train.x[:20])
    assert not hasattr(det, "model_")


def test_an_unfitted_detector_says_so():
    det = AnomalyDetector("vae")
    x = np.zeros((2, 1, 8, 8), dtype=np.uint8)
    for call in (det.decision_function, det.predict, det.predict_proba, det.predict_confidence,
                 det.score_samples, det.save):
        with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(\) or load\(\)"):
            call(x)
    with pytest.raises(AttributeError):
        _ = det.threshold_


def test_validation_without_conditions_is_refused_for_a_conditional_fit(digits):
    """(issue 15, item 22) validation=(xv, None) with conditions in training took condition 0 for
    every validation sample; an unconditional fit still takes it."""
    x, y = digits.train.x[:200], digits.train.y[:200]
    det = AnomalyDetector("cvae", epochs=1, latent_dim=2, progress=False)
    with pytest.raises(ValueError, match="validation has no conditions, but X was given 10 conditions"):
        det.fit(x, c=y, validation=(digits.test.x[:50], None))
    vae = AnomalyDetector("vae", epochs=1, latent_dim=2, progress=False)
    assert vae.fit(x, validation=(digits.test.x[:50], None)).model_ is not None


# --------------------------------------------------------------------------- feature vectors read as at fit


@pytest.mark.parametrize("model", ["vae", "knn"])
@pytest.mark.parametrize("fit_dtype", [np.uint8, np.int64])
def test_the_same_feature_values_score_the_same_in_any_integer_type(digits, tmp_path, model, fit_dtype):
    """A model fitted on 0-255 features held as one integer type scores the same numbers held as
    another the same, saved and loaded too (an int64 fit once read uint8 input as intensities / 255)."""
    flat = digits.train.x.reshape(len(digits.train.x), -1)
    det = AnomalyDetector(model, epochs=1, **SMALL).fit(flat.astype(fit_dtype))
    test = digits.test.x.reshape(len(digits.test.x), -1)[:50]
    expected = det.decision_function(test.astype(fit_dtype))
    loaded = AnomalyDetector.load(det.save(tmp_path / "m"))
    for other in (np.uint8, np.int64, np.int16):
        for d in (det, loaded):
            np.testing.assert_allclose(d.decision_function(test.astype(other)), expected, rtol=1e-6)


def test_a_pixel_model_refuses_float_features_beyond_the_unit_interval(digits):
    flat = digits.train.x.reshape(len(digits.train.x), -1)
    det = AnomalyDetector("knn", progress=False).fit(flat)  # uint8: pixel intensities
    assert det.input_ == {"pixels": True}
    np.testing.assert_allclose(det.decision_function(flat[:5] / 255.0), det.decision_function(flat[:5]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"fitted on uint8 pixel intensities .* found 0\.\.255"):
        det.decision_function(flat[:5].astype(np.float32))
    with pytest.raises(ValueError, match="holds integers -1..255"):
        det.decision_function(np.r_[flat[:4].astype(np.int64), [np.full(flat.shape[1], -1)]].clip(-1))


# --------------------------------------------------------------------------- posterior collapse


def test_a_collapsed_posterior_is_warned_about_and_a_used_latent_is_not(digits):
    from dcvae.training import PosteriorCollapseWarning
    with pytest.warns(PosteriorCollapseWarning, match="nats per latent dimension"):
        AnomalyDetector("beta-vae", params={"beta": 100.0}, epochs=3, **SMALL).fit(digits.train.x)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)
        det = AnomalyDetector("vae", epochs=40, latent_dim=8, patience=0, progress=False).fit(digits.train.x)
    assert det.history_.kl_per_dimension(8) > 0.2  # 0.31 here


def test_a_torch_tensor_that_requires_grad_is_taken_like_its_values(digits):
    import torch
    x = digits.train.x.reshape(len(digits.train.x), -1).astype(np.float32) / 255.0
    tensor = torch.from_numpy(x).requires_grad_(True)
    det = AnomalyDetector("knn", progress=False).fit(tensor)
    np.testing.assert_array_equal(det.decision_function(tensor[:20]), det.decision_function(x[:20]))


def test_the_detector_samples_by_condition_name(fitted):
    x = fitted.sample(5, "3", seed=1)
    assert x.shape == (5, 1, 8, 8) and np.array_equal(x, fitted.model_.sample(5, 3, seed=1))
    with pytest.raises(ValueError, match="never seen in training"):
        fitted.sample(5, "cat")
    knn = AnomalyDetector("knn", progress=False).fit(np.random.default_rng(0).random((20, 3)))
    with pytest.raises(ValueError, match="classical detector"):
        knn.sample(3)


def test_each_model_takes_its_own_backbone_unless_one_is_named(digits, tmp_path):
    """backbone=None is the model's own: dcvae-prior's "auto" (conv on images, mlp on feature
    vectors), mlp for the other VAEs; a named one wins; the saved model names the one it ran."""
    x = digits.train.x[:300]
    table = np.random.default_rng(0).random((300, 6))
    fit = {"epochs": 1, "progress": False, "latent_dim": 2, "hidden_dims": (16,)}
    prior = AnomalyDetector("dcvae-prior", **fit).fit(x)
    assert prior.model_.config.backbone == "conv"
    assert AnomalyDetector("dcvae-prior", **fit).fit(table).model_.config.backbone == "mlp"
    assert AnomalyDetector("vae", **fit).fit(x).model_.config.backbone == "mlp"
    assert AnomalyDetector("vae", backbone="auto", **fit).fit(x).model_.config.backbone == "conv"
    assert AnomalyDetector("dcvae-prior", backbone="mlp", **fit).fit(x).model_.config.backbone == "mlp"
    with pytest.raises(ValueError, match="conv backbone needs images"):
        AnomalyDetector("dcvae-prior", backbone="conv", **fit).fit(table)
    prior.save(tmp_path / "prior")
    assert AnomalyDetector.load(tmp_path / "prior").backbone == "conv"


def test_the_library_default_is_deterministic_and_survives_save_and_load(digits, tmp_path):
    """AnomalyDetector() on images: dCVAE-prior on conv with recon+latent+latent-knn. Two fits with
    one seed give the same scores to the bit, and so does the saved model, in both modes."""
    x, c = digits.train.x[:600], digits.train.y[:600]
    fit = {"epochs": 2, "latent_dim": 4, "hidden_dims": (32,), "progress": False}
    one, two = (AnomalyDetector(**fit).fit(x, c=c) for _ in range(2))
    assert (one.model, one.model_.config.backbone, one.anomaly_score_) == (
        "dcvae-prior", "conv", "recon+latent+latent-knn")
    one.save(tmp_path / "default")
    loaded = AnomalyDetector.load(tmp_path / "default")
    test_x, test_c = digits.test.x, digits.test.y
    for det in (two, loaded):
        assert np.array_equal(det.decision_function(test_x), one.decision_function(test_x))
        assert np.array_equal(det.decision_function(test_x, test_c), one.decision_function(test_x, test_c))
        assert np.array_equal(det.predict(test_x), one.predict(test_x))


def test_a_standardised_score_with_a_one_sample_validation_carve_is_refused_before_training(
        digits, monkeypatch):
    import dcvae.detector.estimator as estimator

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the carve was checked")

    monkeypatch.setattr(estimator, "_train", no_training)
    x = digits.train.x[:3]  # validation_fraction 0.1 of 3 samples: 1 to validate on
    with pytest.raises(ValueError, match=r"score 'recon\+kl' is standardised on the normal validation "
                                         r"carve, which needs at least 2 samples; it holds 1"):
        AnomalyDetector("vae", anomaly_score="recon+kl", epochs=1, **SMALL).fit(x)
    with pytest.raises(ValueError, match="it holds 1"):
        AnomalyDetector("vae", anomaly_score="recon+kl", epochs=1, **SMALL).fit(
            digits.train.x[:20], validation=(x[:1], None))
    monkeypatch.undo()
    fitted = AnomalyDetector("vae", epochs=1, **SMALL).fit(x)  # recon needs no statistics: it trains
    assert np.isfinite(fitted.decision_function(x)).all()
