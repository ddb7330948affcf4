"""Model directories saved by dcvae 0.1.0 load with this version and score as 0.1.0 did.

The expected scores were computed by 0.1.0 itself when the fixtures were made (see
tests/fixtures/v0_1/README.md), never by the code under test. They agree to float32 rounding
(``SAME``): they were computed on an AMD CPU, and another CPU's matrix kernels (Intel with
AVX-512, measured) move a score's last bit. Retraining the same settings from
scratch gives the same model again: the objective did not change either.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.scoring import score_table

FIXTURES = Path(__file__).parents[1] / "fixtures" / "v0_1"
EXPECTED = json.loads((FIXTURES / "expected_scores.json").read_text())
IMAGE_MODELS = sorted(name for name in EXPECTED if name != "dcvae-tabular")
BASES = ("recon", "elbo", "kl", "prior")
SAME = {"rtol": 1e-6, "atol": 1e-6}  # a few float32 ulps; a changed score moves far more


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    x_te = data.test.x[:40]
    c_te = np.array([str(v % 9) for v in data.test.y[:40]])
    return data, x_te, c_te


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_model_saved_by_0_1_scores_as_0_1_did(name, digits):
    _, x_te, c_te = digits
    expected = EXPECTED[name]
    det = AnomalyDetector.load(FIXTURES / name)
    x = np.load(FIXTURES / "tabular_query.npy") if name == "dcvae-tabular" else x_te
    assert det.thresholds_ == expected["thresholds"]
    np.testing.assert_allclose(det.decision_function(x), expected["decision_marginal"], **SAME)
    if "decision_given" in expected:
        given = np.array(["site-b"] * 20) if name == "dcvae-tabular" else c_te
        np.testing.assert_allclose(det.decision_function(x, given), expected["decision_given"], **SAME)
    if name == "dcvae-tabular":
        return
    model = det.model_
    index = (np.array([model.config.condition_names.index(v) for v in c_te])
             if model.conditional else None)
    for mode, c in (("marginal", None), ("given", index)):
        table = score_table(model, x, c, scores=BASES)
        for base in BASES:
            np.testing.assert_allclose(table[base], expected[f"bases_{mode}"][base], **SAME,
                                       err_msg=f"{name} {mode} {base}")


def test_renamed_settings_of_0_1_files_are_read_under_their_new_names():
    det = AnomalyDetector.load(FIXTURES / "beta-tcvae-mlp")
    assert det.params["mi_weight"] == 1.0 and det.params["tc_weight"] == 4.0
    assert det.params["dimwise_kl_weight"] == 2.0 and "beta" not in det.params
    tabular = AnomalyDetector.load(FIXTURES / "dcvae-tabular")
    assert tabular.model_.likelihood.logvar.shape == (5,)  # 0.1's output_logvar


def test_a_0_1_file_saved_again_scores_the_same(tmp_path, digits):
    _, x_te, _ = digits
    for name in ("dcvae-mlp", "beta-tcvae-mlp", "dcvae-tabular"):
        det = AnomalyDetector.load(FIXTURES / name)
        det.save(tmp_path / name)
        again = AnomalyDetector.load(tmp_path / name)
        x = np.load(FIXTURES / "tabular_query.npy") if name == "dcvae-tabular" else x_te
        np.testing.assert_array_equal(again.decision_function(x), det.decision_function(x))
        with pytest.raises(ValueError, match="saved by dcvae 0.1, which kept no scores"):
            again.predict_proba(x)  # 0.1 kept no validation scores, and saving again cannot add them


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_retraining_the_0_1_settings_gives_the_0_1_model_again(name, digits):
    """Same settings, seed and data: the weights and scores of 0.1 (up to float rounding of a
    different but equivalent summation in the validation pass's thresholds)."""
    data, x_te, c_te = digits
    saved = AnomalyDetector.load(FIXTURES / name)
    keep = data.train.y != 9
    fresh = AnomalyDetector(**{**saved.get_params(), "likelihood": "auto"})
    fresh.fit(data.train.x[keep], c=data.train.y[keep], training_scores=False)
    expected = EXPECTED[name]
    np.testing.assert_allclose(fresh.decision_function(x_te), expected["decision_marginal"], rtol=1e-5)
    if "decision_given" in expected:
        np.testing.assert_allclose(fresh.decision_function(x_te, c_te), expected["decision_given"],
                                   rtol=1e-5)
    for mode, threshold in expected["thresholds"].items():
        assert fresh.thresholds_[mode] == pytest.approx(threshold, rel=1e-5)
