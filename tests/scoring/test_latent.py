"""The latent score (dcvae.scoring.latent): Gaussians of the normal training codes, fitted on the
training part only, deterministic, and saved with the detector bit-identically."""

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
