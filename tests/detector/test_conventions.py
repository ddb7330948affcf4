"""The detector as scikit-learn and PyOD users expect it: check_estimator, clone, Pipeline,
GridSearchCV, and PyOD's attributes and methods, each checked against its definition."""

import numpy as np
import pytest
from scipy.special import erf
from scipy.stats import binom
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from dcvae.detector import EXPECTED_FAILED_CHECKS, AnomalyDetector, expected_failed_checks
from dcvae.evaluation.metrics import roc_auc

VAES = ("vae", "dcvae", "factorvae")
TINY = {"epochs": 2, "latent_dim": 2, "hidden_dims": (8,), "batch_size": 32, "progress": False}


def _table(n=240, seed=0):
    """Normal rows on a 2-D plane in 5-D, and a few anomalies off it; labels 1 = anomaly."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 2)) @ rng.normal(size=(2, 5))
    anomalies = rng.normal(size=(n // 8, 5)) * 3.0
    x = np.concatenate([normal, anomalies]).astype(np.float32)
    return x, np.r_[np.zeros(n), np.ones(n // 8)].astype(int)


@pytest.fixture(scope="module")
def fitted():
    x, y = _table()
    return AnomalyDetector("vae", **TINY).fit(x), x, y


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vae", "dcvae", "factorvae", "knn", "pca", "pca-gauss", "iforest",
                                   "ecod"])
def test_check_estimator_passes_but_for_the_documented_conventions(model):
    det = AnomalyDetector(model, **TINY)
    expected = expected_failed_checks(det)
    assert EXPECTED_FAILED_CHECKS.items() <= expected.items()
    results = check_estimator(det, expected_failed_checks=expected, on_fail=None, on_skip=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    status = {r["check_name"]: r["status"] for r in results}
    # a VAE's batch invariance holds to float32 rounding, which is exact on some CPUs
    rounding = {"check_methods_subset_invariance"} if model in VAES else set()
    assert {status[name] for name in set(expected) - rounding} == {"xfail"}
    assert {status[name] for name in rounding} <= {"xfail", "passed"}
    assert sum(s == "passed" for s in status.values()) >= 40


@pytest.mark.parametrize("model", VAES)
def test_a_rows_score_does_not_depend_on_its_batch_beyond_float32_rounding(model):
    x, _ = _table()
    det = AnomalyDetector(model, **TINY).fit(x)
    full = det.decision_function(x[:40])
    one_by_one = np.concatenate([det.decision_function(row[None]) for row in x[:40]])
    np.testing.assert_allclose(one_by_one, full, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(full, full[::-1])  # the rows do score differently
    probability = det.predict_proba(x[:40])[:, 1]
    np.testing.assert_allclose(np.concatenate([det.predict_proba(row[None])[:, 1] for row in x[:40]]),
                               probability, atol=1e-5)


def test_the_constructor_stores_its_arguments_and_clone_copies_them():
    det = AnomalyDetector("beta-vae", params={"beta": 2.0}, latent_dim=3, anomaly_score="recon+kl")
    twin = clone(det)
    assert twin is not det and twin.get_params() == det.get_params()
    assert twin.params == {"beta": 2.0} and twin.params is not det.params
    twin.set_params(params__beta=5.0, epochs=3)
    assert twin.params == {"beta": 5.0} and twin.epochs == 3
    assert det.params == {"beta": 2.0} and det.epochs == 20  # the original is untouched


def test_it_runs_inside_a_pipeline(fitted):
    x, _ = _table()
    pipe = Pipeline([("scale", StandardScaler()), ("detect", AnomalyDetector("vae", **TINY))]).fit(x)
    scaled = StandardScaler().fit_transform(x)
    alone = AnomalyDetector("vae", **TINY).fit(scaled)
    np.testing.assert_allclose(pipe.decision_function(x), alone.decision_function(scaled), rtol=1e-6)
    assert np.array_equal(pipe.predict(x), alone.predict(scaled))


@pytest.mark.slow
def test_grid_search_chooses_settings_by_a_scorer_on_labelled_validation_data():
    x, y = _table(seed=1)
    search = GridSearchCV(AnomalyDetector("beta-vae", **TINY),
                          {"params__beta": [0.5, 4.0], "latent_dim": [1, 2]}, scoring="roc_auc", cv=2)
    search.fit(x, y)  # y: anomaly labels for the scorer; fit itself ignores them
    assert set(search.cv_results_["params"][0]) == {"params__beta", "latent_dim"}
    assert len(search.cv_results_["mean_test_score"]) == 4
    best = search.best_estimator_
    assert best.params == {"beta": search.best_params_["params__beta"]}
    assert 0.0 <= roc_auc(y, best.decision_function(x)) <= 1.0


def test_fit_ignores_y_and_takes_conditions_only_as_c():
    x, y = _table()
    plain = AnomalyDetector("dcvae", **TINY).fit(x)
    with_y = AnomalyDetector("dcvae", **TINY).fit(x, y)
    assert plain.model_.config.condition_names == with_y.model_.config.condition_names == ()
    np.testing.assert_array_equal(plain.decision_function(x), with_y.decision_function(x))
    conditioned = AnomalyDetector("dcvae", **TINY).fit(x, c=y)
    assert conditioned.model_.config.condition_names == ("0", "1")


def test_pyod_attributes_describe_the_training_data(fitted):
    det, x, _ = fitted
    assert det.n_features_in_ == 5
    np.testing.assert_array_equal(det.decision_scores_, det.decision_function(x))
    np.testing.assert_array_equal(det.labels_, (det.decision_scores_ > det.threshold_).astype(int))
    assert det.threshold_ == det.thresholds_["marginal"]
    again = AnomalyDetector("vae", **TINY)
    np.testing.assert_array_equal(again.fit_predict(x), det.labels_)
    skipped = AnomalyDetector("vae", **TINY).fit(x, training_scores=False)
    assert not hasattr(skipped, "decision_scores_") and not hasattr(skipped, "labels_")


def test_score_samples_has_scikit_learns_sign(fitted):
    det, x, y = fitted
    np.testing.assert_array_equal(det.score_samples(x), -det.decision_function(x))
    assert roc_auc(y, det.decision_function(x)) > 0.5 > roc_auc(y, det.score_samples(x))


def test_predict_proba_is_pyods_linear_and_unify_on_the_validation_scale(fitted):
    det, x, _ = fitted
    scores, normal = det.decision_function(x), det.validation_scores_["marginal"]
    linear = det.predict_proba(x)
    expected = np.clip((scores - normal.min()) / (normal.max() - normal.min()), 0, 1)
    np.testing.assert_allclose(linear[:, 1], expected)
    np.testing.assert_allclose(linear.sum(axis=1), 1.0)
    unify = det.predict_proba(x, method="unify")
    pyod_unify = erf((scores - normal.mean()) / (normal.std() * np.sqrt(2)))
    np.testing.assert_allclose(unify[:, 1], np.clip(pyod_unify, 0, 1))
    with pytest.raises(ValueError, match="method must be one of"):
        det.predict_proba(x, method="softmax")


def test_predict_confidence_is_exceed_on_the_validation_scores(fitted):
    det, x, _ = fitted
    scores, normal = det.decision_function(x), det.validation_scores_["marginal"]
    n = len(normal)
    confidence = det.predict_confidence(x)
    for i in (0, 7, len(x) - 1):  # the definition, one sample at a time
        p = (1 + np.sum(normal <= scores[i])) / (2 + n)
        flag = 1 - binom.cdf(n - int(n * det.contamination), n, p)
        assert confidence[i] == pytest.approx(flag if scores[i] > det.threshold_ else 1 - flag)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    labels, also = det.predict(x, return_confidence=True)
    np.testing.assert_array_equal(labels, det.predict(x))
    np.testing.assert_array_equal(also, confidence)
