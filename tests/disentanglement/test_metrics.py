"""Disentanglement metrics on the sanity cases of disentanglement_lib's tests, hand-computed importance
matrices, their invariances (order, scale and sign of the code dimensions) and their input checks."""

import math

import numpy as np
import pytest

from dcvae.disentanglement import dci, dci_from_importance, factorvae_score, mig, sap


def _factors(n: int, k: int, seed: int = 0) -> np.ndarray:
    """k independent factors, factor j uniform over its own number of values (5 to 10)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 11, size=k)
    return rng.integers(0, sizes, size=(n, k))


def _chance(factors: np.ndarray) -> float:
    """Mean over factors of the most frequent value's share: the accuracy of guessing blind."""
    return float(np.mean([np.bincount(col).max() / len(col) for col in factors.T]))


FACTORS = _factors(2000, 10)
OBSERVED = FACTORS.astype(np.float64)  # every factor observed directly, one code dimension each
SMALL = _factors(1000, 4, seed=1)  # for the tree- and classifier-based metrics


def _entangled(factors: np.ndarray, seed: int = 2) -> np.ndarray:
    """Generic codes: noisy mixtures of the factors, with no exact ties, which no metric scores at 0 or 1."""
    rng = np.random.default_rng(seed)
    k = factors.shape[1]
    weights = np.eye(k, k + 2) + rng.normal(size=(k, k + 2))
    return factors @ weights + rng.normal(size=(len(factors), k + 2))


# -- MIG -------------------------------------------------------------------------------------------

def test_mig_of_factors_observed_directly_is_near_one():
    assert 0.9 <= mig(OBSERVED, FACTORS) <= 1.0


def test_mig_of_constant_codes_is_near_zero_and_does_not_crash():
    assert 0.0 <= mig(np.zeros_like(OBSERVED), FACTORS) <= 0.2


def test_mig_of_duplicated_factors_is_near_zero():
    # two dimensions share each factor's information equally: no gap
    assert 0.0 <= mig(np.hstack([OBSERVED, OBSERVED]), FACTORS) <= 0.1


def test_mig_on_a_hand_computed_case():
    # v uniform over 4 values; z0 = v carries log 4 nats, z1 = v // 2 (its high bit) carries log 2:
    # the gap is log 2, the entropy log 4, so MIG = 1/2
    v = np.repeat(np.arange(4), 2)[:, None]
    codes = np.column_stack([v[:, 0], v[:, 0] // 2]).astype(float)
    assert mig(codes, v, n_bins=4) == pytest.approx(0.5, abs=1e-12)


# -- DCI from an importance matrix -----------------------------------------------------------------

def test_dci_of_a_diagonal_importance_is_one_one():
    assert dci_from_importance(np.diag([5.0, 1.0, 2.0, 3.0, 4.0])) == pytest.approx((1.0, 1.0))


def test_dci_of_redundant_codes_loses_completeness_only():
    # d = 4 codes, each factor captured equally by two: each factor's entropy over codes is
    # log_4(2) = 1/2, so completeness 1/2; each code still names one factor
    r = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert dci_from_importance(r) == pytest.approx((1.0, 0.5))
    doubled = np.vstack([np.eye(5), np.eye(5)])  # d = 10: completeness 1 - log_10(2)
    assert dci_from_importance(doubled) == pytest.approx((1.0, 1.0 - math.log(2) / math.log(10)))


def test_dci_of_one_code_for_two_factors_loses_disentanglement_only():
    # code 0 splits its importance over factors 0 and 1: entropy log_3(2) in base k = 3, and it holds
    # 2/3 of the total importance, so disentanglement = 1 - (2/3) log_3(2); every factor has one code
    r = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = 1.0 - 2.0 / 3.0 * math.log(2) / math.log(3)
    assert dci_from_importance(r) == pytest.approx((expected, 1.0))
    # every code holding two factors: disentanglement exactly 1 - log_k(2), k = 10
    halved = np.hstack([np.eye(5), np.eye(5)])
    assert dci_from_importance(halved) == pytest.approx((1.0 - math.log(2) / math.log(10), 1.0))


def test_completeness_weights_each_factor_by_its_share_of_the_importance():
    # factor 0 (importance 3) sits on one code; factor 1 (importance 2) is split over two codes,
    # entropy log_3(2): weighted 3/5 and 2/5 (an unweighted mean would give 1/2 and 1/2)
    r = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    expected = 3 / 5 + 2 / 5 * (1.0 - math.log(2) / math.log(3))
    assert dci_from_importance(r) == pytest.approx((1.0, expected))


def test_dci_of_zero_and_of_empty_codes():
    assert dci_from_importance(np.zeros((4, 3))) == (0.0, 0.0)
    # a code with no importance carries no weight
    assert dci_from_importance(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx((1.0, 1.0))


# -- DCI from codes --------------------------------------------------------------------------------

def test_dci_of_factors_observed_directly():
    scores = dci(SMALL.astype(float), SMALL)
    assert scores["disentanglement"] >= 0.95
    assert scores["completeness"] >= 0.95
    assert scores["informativeness"] >= 0.95


def test_dci_of_noise_codes_is_uninformative():
    noise = np.random.default_rng(3).normal(size=(len(SMALL), 4))
    scores = dci(noise, SMALL)
    assert abs(scores["informativeness"] - _chance(SMALL)) < 0.06
    assert scores["disentanglement"] < 0.2 and scores["completeness"] < 0.2


def test_dci_of_duplicated_factors_halves_completeness():
    scores = dci(np.hstack([SMALL, SMALL]).astype(float), SMALL)
    assert scores["disentanglement"] >= 0.95
    assert scores["completeness"] == pytest.approx(1.0 - math.log(2) / math.log(8), abs=0.05)


# -- FactorVAE score -------------------------------------------------------------------------------

def test_factorvae_of_factors_observed_directly():
    assert factorvae_score(OBSERVED, FACTORS) >= 0.9


def test_factorvae_of_rotated_codes_is_clearly_lower():
    standardised = (OBSERVED - OBSERVED.mean(axis=0)) / OBSERVED.std(axis=0)
    rotation = np.linalg.qr(np.random.default_rng(4).normal(size=(10, 10)))[0]
    assert factorvae_score(standardised @ rotation, FACTORS) <= 0.8


def test_factorvae_leaves_collapsed_dimensions_out():
    assert factorvae_score(np.zeros_like(OBSERVED), FACTORS) == 0.0
    # the threshold is an absolute standard deviation: factors shrunk to std ~0.03 have all collapsed
    assert factorvae_score(0.01 * OBSERVED, FACTORS) == 0.0
    assert factorvae_score(0.1 * OBSERVED, FACTORS) >= 0.9


def test_factorvae_is_seeded():
    codes = _entangled(SMALL)
    assert factorvae_score(codes, SMALL, seed=5) == factorvae_score(codes, SMALL, seed=5)


# -- SAP -------------------------------------------------------------------------------------------

def test_sap_of_factors_observed_directly():
    # S_kk = 1 (a softmax over lines gives every value its own interval); a code independent of the
    # factor does about as well as guessing its most frequent value, so SAP ~ 1 - that share
    score = sap(SMALL.astype(float), SMALL)
    assert score > 0.7
    assert score == pytest.approx(1.0 - _chance(SMALL), abs=0.06)


def test_sap_of_duplicated_factors_is_zero():
    assert sap(np.hstack([SMALL, SMALL]).astype(float), SMALL) == pytest.approx(0.0, abs=1e-12)


def test_sap_of_noise_codes_is_near_zero():
    assert sap(np.random.default_rng(6).normal(size=(len(SMALL), 4)), SMALL) < 0.1


# -- invariances -----------------------------------------------------------------------------------

METRICS = {
    "mig": lambda c, f: mig(c, f),
    "factorvae": lambda c, f: factorvae_score(c, f),
    "dci": lambda c, f: dci(c, f),
    "sap": lambda c, f: sap(c, f),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_no_metric_depends_on_the_order_scale_or_sign_of_the_dimensions(name):
    metric = METRICS[name]
    codes = _entangled(SMALL)
    reference = metric(codes, SMALL)
    permuted = metric(codes[:, [3, 0, 5, 1, 4, 2]], SMALL)
    rescaled = metric(codes * np.array([3.0, -0.5, 2.0, -7.0, 0.25, -1.0]), SMALL)
    assert permuted == pytest.approx(reference, abs=1e-12, rel=0)
    assert rescaled == pytest.approx(reference, abs=1e-12, rel=0)
    # the codes are not degenerate: the metric does not sit at a bound where invariance is trivial
    values = list(reference.values()) if isinstance(reference, dict) else [reference]
    assert all(0.0 < value < 1.0 for value in values), values


def test_dci_from_importance_does_not_depend_on_the_order_of_codes_or_factors():
    r = np.random.default_rng(7).random((5, 3))
    reference = dci_from_importance(r)
    assert dci_from_importance(r[[2, 4, 0, 1, 3]][:, [1, 2, 0]]) == pytest.approx(reference, abs=1e-12)
    assert dci_from_importance(7.5 * r) == pytest.approx(reference, abs=1e-12)


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_factor_with_a_single_value_is_refused(name):
    factors = SMALL.copy()
    factors[:, 3] = 2
    with pytest.raises(ValueError, match="factor 3 has a single value"):
        METRICS[name](SMALL.astype(float), factors)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_codes_that_are_not_finite_are_refused(name, bad):
    codes = SMALL.astype(float)
    codes[17, 2] = bad
    with pytest.raises(ValueError, match=r"codes contain NaN or inf .*sample 17, dimension 2"):
        METRICS[name](codes, SMALL)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_codes_and_factors_of_different_lengths_are_refused(name):
    with pytest.raises(ValueError, match="codes has 999 samples but factors has 1000"):
        METRICS[name](SMALL[:-1].astype(float), SMALL)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_codes_that_are_not_2d_are_refused(name):
    with pytest.raises(ValueError, match=r"codes must be a 2-D array .*got shape \(1000,\)"):
        METRICS[name](SMALL[:, 0].astype(float), SMALL)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_factors_that_are_not_integer_valued_are_refused(name):
    factors = SMALL.astype(float)
    factors[5, 1] = 0.5
    with pytest.raises(ValueError, match=r"factors must be integer-valued.*factor 1 holds 0.5 at sample 5"):
        METRICS[name](SMALL.astype(float), factors)
    with pytest.raises(ValueError, match="factors must be integer-valued"):
        METRICS[name](SMALL.astype(float), SMALL.astype(str))


def test_factors_stored_as_whole_floats_are_accepted():
    assert mig(OBSERVED, FACTORS.astype(float)) == mig(OBSERVED, FACTORS)


def test_mig_refuses_fewer_samples_than_bins():
    with pytest.raises(ValueError, match="19 samples are fewer than n_bins=20"):
        mig(OBSERVED[:19], FACTORS[:19])


@pytest.mark.parametrize("name", ["mig", "sap"])
def test_mig_and_sap_refuse_a_single_code_dimension(name):
    with pytest.raises(ValueError, match=f"{name}: needs at least 2 code dimensions, got 1"):
        METRICS[name](SMALL[:, :1].astype(float), SMALL)


@pytest.mark.parametrize("bad, message", [
    (np.array([1.0, 2.0]), "must be a non-empty 2-D array"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or inf"),
    (np.array([[1.0, -0.1], [0.0, 1.0]]), "must be non-negative"),
])
def test_dci_from_importance_refuses_bad_matrices(bad, message):
    with pytest.raises(ValueError, match=message):
        dci_from_importance(bad)
