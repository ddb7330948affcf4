"""The latent scores (dcvae.scoring.latent): Gaussians of the normal training codes and the codes
themselves, taken from the training part only, deterministic, and saved with the detector
bit-identically."""

import numpy as np
import pytest
import torch

import dcvae.scoring.latent as latent_module
from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector

VARIANT = {"beta": 1.0, "encoder_condition": False, "prior_means": "fixed"}
SMALL = {"latent_dim": 4, "hidden_dims": (32,), "epochs": 3, "patience": 0, "progress": False}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_the_gaussians_see_the_normal_training_codes_only(digits, ledoit_wolf_fits):
    seen = ledoit_wolf_fits
    normal = digits.train.y != 2
    x, c = digits.train.x[normal], digits.train.y[normal]
    val_x, val_c = x[:100], c[:100]
    det = AnomalyDetector("dcvae", params=VARIANT, **SMALL).fit(x[100:], c=c[100:], validation=(val_x, val_c))
    fitted = [s for s in seen if s.shape[1] == 4]  # the latent fits (codes are 4-D)
    assert sum(len(s) for s in fitted) == len(x) - 100 + len(x) - 100  # pooled + per condition
    model = det.model_
    train = x[100:]
    with torch.no_grad():  # the blind encoder's code of each training image, in the fit's batches
        codes = torch.cat([model.encode(model.prepare(torch.as_tensor(train[i:i + 1024])),
                                        torch.zeros(len(train[i:i + 1024]), 9))[0]
                           for i in range(0, len(train), 1024)])  # (a matrix product's bits depend on M)
    expected = {row.tobytes() for row in codes.double().numpy()}
    assert {row.tobytes() for s in fitted for row in s} == expected  # training codes, nothing else
    before = len(seen)
    det.decision_function(digits.test.x, np.where(digits.test.y == 2, 0, digits.test.y))
    assert len(seen) == before  # scoring fits nothing


def test_the_variant_is_deterministic_and_survives_save_and_load(digits, tmp_path):
    normal = digits.train.y != 2
    x, c = digits.train.x[normal], digits.train.y[normal]
    one = AnomalyDetector("dcvae", params=VARIANT, anomaly_score="latent", **SMALL).fit(x, c=c)
    two = AnomalyDetector("dcvae", params=VARIANT, anomaly_score="latent", **SMALL).fit(x, c=c)
    q = digits.test.x
    np.testing.assert_array_equal(one.decision_function(q), two.decision_function(q))
    one.save(tmp_path / "m")
    loaded = AnomalyDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(q), one.decision_function(q))
    given = np.where(digits.test.y == 2, 0, digits.test.y)  # conditions the model was trained on
    np.testing.assert_array_equal(loaded.decision_function(q, given), one.decision_function(q, given))
    assert loaded.anomaly_score_ == "latent"


def test_a_model_without_gaussians_does_not_offer_the_latent_score(digits, tmp_path):
    det = AnomalyDetector("vae", **SMALL).fit(digits.train.x)
    det.model_.latent_gaussians = None
    with pytest.raises(ValueError, match=r"offers the scores .*, not \['latent'\]"):
        det.base_scores(digits.test.x, bases=("latent",))
    assert latent_module.LatentGaussians.from_arrays({}, 1, 4) is None


# ------------------------------------------------------------------------------ latent-knn
def _own_codes(model, x, c):
    """mu of each row of x at its own condition c, in the fit's batches of 1,024."""
    with torch.no_grad():
        onehot = torch.nn.functional.one_hot(torch.as_tensor(c), model.n_conditions).float()
        return torch.cat([model.encode(model.prepare(torch.as_tensor(x[i:i + 1024])), onehot[i:i + 1024])[0]
                          for i in range(0, len(x), 1024)]).double().numpy()


def test_latent_knn_is_the_mean_distance_to_the_k_nearest_training_codes_of_the_condition(digits):
    normal = digits.train.y != 2
    x, c = digits.train.x[normal], np.where(digits.train.y[normal] > 2, digits.train.y[normal] - 1,
                                            digits.train.y[normal])  # indices 0..8
    names = [str(v) for v in range(10) if v != 2]
    det = AnomalyDetector("dcvae", **SMALL).fit(x[100:], c=c[100:], condition_names=names,
                                                validation=(x[:100], c[:100]))
    model, k = det.model_, latent_module.LATENT_KNN_K
    train = _own_codes(model, x[100:], c[100:])  # the training part's codes; the carve's are not
    q = digits.test.x[:60]
    per_condition = []
    for j in range(len(names)):
        mine = train[c[100:] == j]
        query = _own_codes(model, q, np.full(len(q), j))
        d = np.sqrt(((query[:, None, :] - mine[None, :, :]) ** 2).sum(axis=2))
        per_condition.append(np.sort(d, axis=1)[:, :k].mean(axis=1))
    expected = np.stack(per_condition, axis=1)  # (n, K), brute force in float64
    given = np.arange(len(q)) % len(names)
    got = det.base_scores(q, np.array(names)[given], bases=("latent-knn",))["latent-knn"]
    np.testing.assert_allclose(got, expected[np.arange(len(q)), given], rtol=1e-5)
    marginal = det.base_scores(q, bases=("latent-knn",))["latent-knn"]
    np.testing.assert_allclose(marginal, expected.min(axis=1), rtol=1e-5)


def test_latent_knn_is_deterministic_and_survives_save_and_load(digits, tmp_path):
    normal = digits.train.y != 2
    x, c = digits.train.x[normal], digits.train.y[normal]
    fit = {"params": VARIANT, "anomaly_score": "recon+latent-knn", **SMALL}
    one = AnomalyDetector("dcvae", **fit).fit(x, c=c)
    two = AnomalyDetector("dcvae", **fit).fit(x, c=c)
    q = digits.test.x
    np.testing.assert_array_equal(one.decision_function(q), two.decision_function(q))
    one.save(tmp_path / "m")
    loaded = AnomalyDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(q), one.decision_function(q))
    given = np.where(digits.test.y == 2, 0, digits.test.y)
    np.testing.assert_array_equal(loaded.decision_function(q, given), one.decision_function(q, given))


def test_the_codes_are_a_seeded_subsample_above_the_cap(digits, monkeypatch):
    monkeypatch.setattr(latent_module, "MAX_CODES", 50)
    det = AnomalyDetector("cvae", **SMALL).fit(digits.train.x, c=digits.train.y)
    codes = det.model_.latent_codes
    assert codes.codes.shape == (50, 4)
    offsets = codes.offsets.numpy()
    assert offsets[0] == 0 and offsets[-1] == 50 and np.all(np.diff(offsets) >= 0)
    again = AnomalyDetector("cvae", **SMALL).fit(digits.train.x, c=digits.train.y).model_.latent_codes
    assert torch.equal(again.codes, codes.codes)  # the same 50, by the seed


def test_codes_that_do_not_fit_the_model_are_refused():
    good = {"latent.codes": np.zeros((5, 4), np.float32), "latent.code_offsets": np.array([0, 2, 5])}
    assert latent_module.LatentCodes.from_arrays(good, 2, 4) is not None
    assert latent_module.LatentCodes.from_arrays({}, 2, 4) is None  # saved before latent-knn
    with pytest.raises(ValueError, match="do not fit 3 conditions"):
        latent_module.LatentCodes.from_arrays(good, 3, 4)
    with pytest.raises(ValueError, match="must rise from 0"):
        latent_module.LatentCodes.from_arrays({**good, "latent.code_offsets": np.array([0, 4, 3])}, 2, 4)


def test_a_model_without_codes_does_not_offer_latent_knn(digits):
    det = AnomalyDetector("vae", **SMALL).fit(digits.train.x)
    det.model_.latent_codes = None
    with pytest.raises(ValueError, match=r"offers the scores .*, not \['latent-knn'\]"):
        det.base_scores(digits.test.x, bases=("latent-knn",))
