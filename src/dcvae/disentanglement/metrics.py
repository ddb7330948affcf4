"""Disentanglement metrics: pure functions of a model's codes and the ground-truth factors.

Every metric takes ``codes``, a float array (n samples, d code dimensions), and ``factors``, an
integer array (n samples, k factors) of discrete factor values, and scores how well single code
dimensions line up with single factors. Higher is better; every score lies in [0, 1].

``mig`` -- the mutual information gap (Chen et al., "Isolating Sources of Disentanglement in VAEs",
    NeurIPS 2018; Eq. 9 of the dCVAE paper). Each code dimension is cut into equal-width bins; for
    each factor, the gap between the two code dimensions that share the most information with it,
    as a fraction of the factor's entropy; averaged over factors. It asks: is each factor captured
    by one dimension and by no second one?
``factorvae_score`` -- Kim & Mnih, "Disentangling by Factorising", ICML 2018. Fix one factor, and
    the dimension whose (normalised) variance falls the most should name that factor; the score is
    the accuracy of a majority-vote classifier from "dimension of least variance" to "fixed factor".
    Here batches are drawn from the given pool of samples instead of from a data generator.
``dci`` -- Eastwood & Williams, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", ICLR 2018. A tree ensemble per factor gives an importance matrix R (code
    dimension x factor); disentanglement: each dimension's importance concentrates on one factor;
    completeness: each factor's importance concentrates on one dimension; informativeness: the
    ensembles' test accuracy. ``dci_from_importance`` is the part that needs only R.
``sap`` -- the separated attribute predictability of Kumar et al., "Variational Inference of
    Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018, for discrete factors:
    how well each single dimension predicts each factor, and per factor the gap between the best
    and the second-best dimension.

Which codes: the library computes every metric from the encoder's posterior means, as
disentanglement_lib does (Locatello et al., ICML 2019). Sampled codes z ~ q(z|x) add the posterior
noise to every sample, which differs most where a dimension has collapsed: its means sit near a
constant (the FactorVAE score prunes it, MIG gives it no information), while its samples look like
N(0, 1) noise. The noise also spreads each dimension over more MIG bins and lowers the accuracies
that DCI's informativeness and SAP are built from, so scores from samples are lower and noisier.

Invariances: no metric depends on the order of the code dimensions or on rescaling any of them by
a non-zero factor (negative included): MIG's bins span each dimension's own range, SAP standardises
each dimension, and DCI's trees see only the order of each dimension's values. The one exception is
the FactorVAE score's collapse threshold, an absolute standard deviation (0.05, as in
disentanglement_lib), so rescaling is free as long as no dimension crosses it.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score

#: A code dimension whose standard deviation over the pool is below this has collapsed (FactorVAE).
COLLAPSED_STD = 0.05
#: Trees per factor in ``dci``'s random forests.
DCI_TREES = 50
# Dimensions whose normalised variances agree to this relative tolerance tie for a FactorVAE vote.
_TIE_RTOL = 1e-9


def _check_inputs(codes: np.ndarray, factors: np.ndarray, metric: str,
                  min_dims: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return codes as float64 and factors as int64, or raise one ValueError naming the problem."""
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.ndim != 2:
        raise ValueError(f"{metric}: codes must be a 2-D array (n samples, d dimensions), "
                         f"got shape {codes.shape}")
    if factors.ndim != 2:
        raise ValueError(f"{metric}: factors must be a 2-D array (n samples, k factors), "
                         f"got shape {factors.shape}")
    if len(codes) != len(factors):
        raise ValueError(f"{metric}: codes has {len(codes)} samples but factors has {len(factors)}")
    if len(codes) < 2:
        raise ValueError(f"{metric}: needs at least 2 samples, got {len(codes)}")
    if codes.shape[1] < min_dims:
        raise ValueError(f"{metric}: needs at least {min_dims} code dimensions, got {codes.shape[1]}")
    if factors.shape[1] == 0:
        raise ValueError(f"{metric}: factors has no columns")
    if codes.dtype.kind not in "biuf":
        raise ValueError(f"{metric}: codes must be real numbers, got dtype {codes.dtype}")
    codes = codes.astype(np.float64)
    bad = np.argwhere(~np.isfinite(codes))
    if len(bad):
        row, dim = bad[0]
        raise ValueError(f"{metric}: codes contain NaN or inf ({len(bad)} entries, the first at sample "
                         f"{row}, dimension {dim})")
    factors = _integer_factors(factors, metric)
    for j in range(factors.shape[1]):
        if factors[:, j].min() == factors[:, j].max():
            raise ValueError(f"{metric}: factor {j} has a single value ({factors[0, j]}); "
                             "a factor must take at least two values")
    return codes, factors


def _integer_factors(factors: np.ndarray, metric: str) -> np.ndarray:
    # Floats are accepted when they hold whole numbers: factor tables are often stored as floats.
    if factors.dtype.kind in "biu":
        return factors.astype(np.int64)
    if factors.dtype.kind == "f":
        whole = np.isfinite(factors) & (factors == np.round(factors))
        if whole.all():
            return factors.astype(np.int64)
        row, j = np.argwhere(~whole)[0]
        raise ValueError(f"{metric}: factors must be integer-valued (discrete factor values); "
                         f"factor {j} holds {float(factors[row, j])!r} at sample {row}")
    raise ValueError(f"{metric}: factors must be integer-valued (discrete factor values), "
                     f"got dtype {factors.dtype}")


def _entropy(labels: np.ndarray) -> float:
    """Entropy (nats) of the empirical distribution of ``labels``."""
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    return float(-np.sum(p * np.log(p)))


def _discretise(codes: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every entry: ``n_bins`` equal-width bins over each dimension's own min..max."""
    low = codes.min(axis=0)
    span = codes.max(axis=0) - low
    # A constant dimension falls into a single bin: it carries no information.
    width = np.where(span > 0, span, 1.0) / n_bins
    bins = np.floor((codes - low) / width).astype(np.int64)
    return np.minimum(bins, n_bins - 1)  # each dimension's maximum sits on the last edge


def mig(codes: np.ndarray, factors: np.ndarray, *, n_bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018; the dCVAE paper's Eq. 9), in [0, 1].

    Each code dimension is cut into ``n_bins`` equal-width bins over its own range. With I(z_i; v_k)
    the mutual information (nats) between binned dimension i and factor k, and H(v_k) the factor's
    entropy, MIG = mean over k of (largest - second largest of I(z_i; v_k) over i) / H(v_k).
    A constant dimension lands in one bin and shares no information with any factor.
    """
    codes, factors = _check_inputs(codes, factors, "mig", min_dims=2)
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"mig: n_bins must be an integer >= 2, got {n_bins!r}")
    if len(codes) < n_bins:
        raise ValueError(f"mig: {len(codes)} samples are fewer than n_bins={n_bins}")
    bins = _discretise(codes, int(n_bins))
    info = np.array([[mutual_info_score(factors[:, k], bins[:, i]) for k in range(factors.shape[1])]
                     for i in range(codes.shape[1])])
    entropy = np.array([_entropy(factors[:, k]) for k in range(factors.shape[1])])
    second, first = np.sort(info, axis=0)[-2:]
    return float(np.mean((first - second) / entropy))


def factorvae_score(codes: np.ndarray, factors: np.ndarray, *, batch_size: int = 64, n_train: int = 800,
                    n_eval: int = 400, seed: int = 0) -> float:
    """FactorVAE score (Kim & Mnih 2018) from a pool of samples, in [0, 1].

    Codes are divided by their standard deviation over the pool; dimensions whose standard
    deviation is below ``COLLAPSED_STD`` (0.05) have collapsed and are left out (none left: the score
    is 0). A vote: draw a factor k uniformly, then a value of it (that of a random pool sample, so
    values come with their pool frequencies), then ``batch_size`` pool samples sharing that value
    (with replacement); the dimension of least variance over the batch votes for k. Dimensions that
    tie share the vote equally -- duplicated codes, or a batch of one repeated sample, would otherwise
    hand it to the first one, and the score would depend on their order. A majority-vote classifier
    (each dimension -> the factor it voted for most often) is fitted on ``n_train`` votes; the score
    is its accuracy on ``n_eval`` fresh votes. Randomness: ``numpy.random.default_rng(seed)``.
    """
    codes, factors = _check_inputs(codes, factors, "factorvae_score")
    for name, value, least in (("batch_size", batch_size, 2), ("n_train", n_train, 1),
                               ("n_eval", n_eval, 1)):
        if int(value) != value or value < least:
            raise ValueError(f"factorvae_score: {name} must be an integer >= {least}, got {value!r}")
    std = codes.std(axis=0, ddof=1)
    active = std >= COLLAPSED_STD
    if not active.any():
        return 0.0
    scaled = codes[:, active] / std[active]
    n, k = factors.shape
    # members[j][v]: the pool samples whose factor j takes value v
    members = [{v: np.flatnonzero(factors[:, j] == v) for v in np.unique(factors[:, j])} for j in range(k)]
    rng = np.random.default_rng(seed)

    def votes(count: int) -> np.ndarray:
        tally = np.zeros((scaled.shape[1], k))
        for _ in range(count):
            j = int(rng.integers(k))
            pool = members[j][factors[rng.integers(n), j]]
            variance = scaled[pool[rng.integers(len(pool), size=int(batch_size))]].var(axis=0, ddof=1)
            winners = np.flatnonzero(variance <= variance.min() * (1.0 + _TIE_RTOL))
            tally[winners, j] += 1.0 / len(winners)
        return tally

    classifier = votes(int(n_train)).argmax(axis=1)
    evaluation = votes(int(n_eval))
    return float(evaluation[np.arange(len(classifier)), classifier].sum() / n_eval)


def _train_test(n: int, test_fraction: float, seed: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into train and test indices, both non-empty."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{metric}: test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return order[n_test:], order[:n_test]


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of each slice of ``p`` along ``axis`` (normalised there first), in base ``p.shape[axis]``.

    A slice of zeros gets entropy 0 (its weight is 0 wherever this is used); over a single outcome
    the entropy is 0 in any base.
    """
    size = p.shape[axis]
    if size == 1:
        return np.zeros(p.shape[1 - axis])
    total = p.sum(axis=axis, keepdims=True)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    terms = np.zeros_like(p)
    np.multiply(p, np.log(p, where=p > 0, out=np.zeros_like(p)), out=terms)
    return -terms.sum(axis=axis) / np.log(size)


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of Eastwood & Williams 2018 from an importance matrix.

    ``importance`` R has shape (d code dimensions, k factors), non-negative. Disentanglement:
    sum_i rho_i (1 - H_k(P_i.)) with P_ij = R_ij / sum_j R_ij, the entropy in base k, and rho_i =
    sum_j R_ij / sum R. Completeness: sum_j w_j (1 - H_d(P~_.j)) with P~_ij = R_ij / sum_i R_ij, the
    entropy in base d; the weighting chosen is w_j = sum_i R_ij / sum R, each factor by its share of
    the total importance (the paper's own completeness is the unweighted mean). A matrix of zeros
    scores (0, 0).
    """
    r = np.asarray(importance, dtype=np.float64)
    if r.ndim != 2 or r.size == 0:
        raise ValueError(f"dci_from_importance: importance must be a non-empty 2-D array (d codes, "
                         f"k factors), got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("dci_from_importance: importance contains NaN or inf")
    if (r < 0).any():
        raise ValueError(f"dci_from_importance: importance must be non-negative, got {float(r.min())!r}")
    total = r.sum()
    if total == 0:
        return 0.0, 0.0
    disentanglement = np.sum(r.sum(axis=1) / total * (1.0 - _normalised_entropy(r, axis=1)))
    completeness = np.sum(r.sum(axis=0) / total * (1.0 - _normalised_entropy(r, axis=0)))
    return float(disentanglement), float(completeness)


def _canonical_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes in a form that forgets each dimension's scale, sign and position; and where each came from.

    Trees use only the order of a dimension's values, but they break ties between equally good splits
    by the dimension's position and the direction of the scan, so feeding them raw codes makes DCI
    shift a little under a permutation or a sign flip. Each dimension becomes its dense ranks, turned
    to a fixed one of its two orientations, and the dimensions are sorted by content (any fixed order
    works: identical dimensions are interchangeable). Returns the canonical codes and, for each of
    their columns, the index of the original dimension.
    """
    ranks = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        rank = np.unique(codes[:, i], return_inverse=True)[1].reshape(-1)
        ranks[:, i] = min(rank, rank.max() - rank, key=lambda a: a.tobytes())
    order = np.array(sorted(range(codes.shape[1]), key=lambda i: ranks[:, i].tobytes()), dtype=np.int64)
    return ranks[:, order].astype(np.float64), order


def dci(codes: np.ndarray, factors: np.ndarray, *, seed: int = 0,
        test_fraction: float = 0.3) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    One scikit-learn ``RandomForestClassifier`` per factor (``DCI_TREES`` trees, ``random_state=seed``,
    every dimension a candidate at every split, so an irrelevant dimension earns importance only by
    fitting noise, never because the relevant one was held out) is fitted on a seeded train split;
    its impurity-based feature importances form column k of R, and ``dci_from_importance(R)`` gives
    disentanglement and completeness. Informativeness is the forests' test accuracy averaged over
    factors (chance is about 1 / the number of values). The forests see each dimension's ranks in a
    canonical orientation and order (see ``_canonical_codes``), so no result depends on the order,
    scale or sign of the dimensions.
    """
    codes, factors = _check_inputs(codes, factors, "dci")
    train, test = _train_test(len(codes), test_fraction, seed, "dci")
    canonical, origin = _canonical_codes(codes)
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    accuracy = []
    for k in range(factors.shape[1]):
        forest = RandomForestClassifier(n_estimators=DCI_TREES, max_features=None, random_state=seed)
        with warnings.catch_warnings():  # a factor is a class label by definition, however many values
            warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
            forest.fit(canonical[train], factors[train, k])
        importance[origin, k] = forest.feature_importances_
        accuracy.append(forest.score(canonical[test], factors[test, k]))
    disentanglement, completeness = dci_from_importance(importance)
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(np.mean(accuracy))}


def _standardise(codes: np.ndarray) -> np.ndarray:
    # A constant dimension becomes exactly 0: its floating-point std may be a tiny non-zero number.
    constant = codes.max(axis=0) == codes.min(axis=0)
    centred = np.where(constant, 0.0, codes - codes.mean(axis=0))
    return centred / np.where(constant, 1.0, codes.std(axis=0))


def _single_code_accuracy(code: np.ndarray, factor: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    values = np.unique(factor[train])
    if len(values) == 1:  # nothing to learn: the training split shows one value
        return float(np.mean(factor[test] == values[0]))
    model = LogisticRegression(C=1.0, max_iter=1000).fit(code[train, None], factor[train])
    return float(model.score(code[test, None], factor[test]))


def sap(codes: np.ndarray, factors: np.ndarray, *, seed: int = 0, test_fraction: float = 0.3) -> float:
    """SAP score (Kumar et al. 2018) for discrete factors, in [0, 1].

    S_ij is the test accuracy of predicting factor j from the single standardised dimension i, with a
    multinomial logistic regression (scikit-learn ``LogisticRegression``, lbfgs, C=1) fitted on a
    seeded train split shared by all pairs; SAP = mean over factors of (largest - second largest
    S_ij over i). Softmax over lines lets every value of an ordered factor own an interval of the
    code; disentanglement_lib's one-vs-rest ``LinearSVC`` cannot give the middle values one, and
    scores a dimension equal to a 10-valued factor at about 0.2 accuracy.
    """
    codes, factors = _check_inputs(codes, factors, "sap", min_dims=2)
    train, test = _train_test(len(codes), test_fraction, seed, "sap")
    z = _standardise(codes)
    scores = np.array([[_single_code_accuracy(z[:, i], factors[:, j], train, test)
                        for j in range(factors.shape[1])] for i in range(codes.shape[1])])
    second, first = np.sort(scores, axis=0)[-2:]
    return float(np.mean(first - second))
