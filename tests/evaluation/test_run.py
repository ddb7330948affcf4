"""The one run path (dcvae.evaluation.run): what the detector sees, one pass over the validation
carve, records that keep the committed stores' keys, and a committed record reproduced."""

import json
from pathlib import Path

import numpy as np
import pytest

import dcvae.scoring.scores as scores_module
from dcvae.data import load_dataset
from dcvae.data.datasets import DSpritesDataset
from dcvae.detector import AnomalyDetector
from dcvae.disentanglement.measure import METRICS, measure_disentanglement
from dcvae.evaluation.protocols import factors_split
from dcvae.evaluation.run import FACTORS_FIELDS, RunRecord, RunSpec, evaluation_rows, run_protocol

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results"
QUICK = {"epochs": 1, "hidden_dims": [32, 16], "latent_dim": 2, "train_size": 300}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_a_run_never_shows_the_held_out_class_to_fit(monkeypatch, digits):
    k = 3
    seen = {}
    original_fit = AnomalyDetector.fit
    original_scores = AnomalyDetector.base_scores

    def recording_fit(self, X, y=None, c=None, **kw):
        seen["fit"] = (X.copy(), None if c is None else np.array(c), kw)
        return original_fit(self, X, y, c, **kw)

    def recording_scores(self, X, c=None, bases=None):
        seen.setdefault("score", []).append((X.copy(), c))
        return original_scores(self, X, c, bases)

    monkeypatch.setattr(AnomalyDetector, "fit", recording_fit)
    monkeypatch.setattr(AnomalyDetector, "base_scores", recording_scores)
    record = run_protocol(RunSpec("dcvae", "digits", "leave-one-out", k, 0, QUICK, ("recon",)),
                          digits).record
    x_fit, c_fit, kw = seen["fit"]
    x_val, c_val = kw["validation"]
    held_out = {row.tobytes() for row in digits.train.x[digits.train.y == k]}
    normal = {row.tobytes() for row in digits.train.x[digits.train.y != k]}
    assert not held_out & normal  # the check below would be void if images repeated across classes
    for x in (x_fit, x_val):
        assert all(row.tobytes() in normal and row.tobytes() not in held_out for row in x)
    assert len(x_fit) + len(x_val) == 300
    assert kw["condition_names"] == tuple(str(i) for i in range(10) if i != k)
    assert set(c_fit.tolist()) == set(range(9))
    # the test split is scored without labels (marginal mode); then the held-out class's
    # *training* images, for the validation AUC
    (x_test, c_test), (x_anomalies, c_anomalies) = seen["score"]
    assert c_test is None and np.array_equal(x_test, digits.test.x)
    assert c_anomalies is None and all(row.tobytes() in held_out for row in x_anomalies)
    assert record.n_anomalies == int(np.sum(digits.test.y == k))
    assert record.condition_mode == "marginal"
    assert 0.0 <= record.auc <= 1.0


def test_the_validation_carve_is_scored_once_per_run(monkeypatch, digits):
    passes = []
    original = scores_module._posteriors

    def counting(model, x, *args):
        passes.append(len(x))
        return original(model, x, *args)

    monkeypatch.setattr(scores_module, "_posteriors", counting)
    spec = RunSpec("dcvae", "digits", "leave-one-out", 5, 0, QUICK, ("recon", "elbo", "typical-kl"))
    record = run_protocol(spec, digits).record
    n_held_out = int(np.sum(digits.train.y == 5))
    # one pass each: the validation carve (both modes, every score), the test split, the held-out
    # class's training images
    assert sorted(passes) == sorted([record.n_validation, record.n_test, n_held_out])
    for score in spec.scores:
        metrics = record.metrics[score]
        assert 0.0 <= metrics["validation_auc"] <= 1.0
        assert ("roc_tpr" in metrics) == (score == "recon")  # the headline score's curve only
    assert len(record.metrics["recon"]["roc_tpr"]) == 51


def test_a_diverged_run_is_a_record_too(digits):
    spec = RunSpec("vae", "digits", "leave-one-out", 0, 0, {**QUICK, "lr": 1e30}, ("recon",))
    result = run_protocol(spec, digits)
    out = result.record.to_dict()
    assert result.detector is None and out["status"] == "diverged"
    assert "training diverged" in out["error"] and "auc" not in out and "metrics" not in out


def _committed(name):
    path = RESULTS / name / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("store", ["paper", "tuned", "tuning10", "epochs10", "oneclass10", "prior10"])
def test_the_committed_stores_keep_their_keys(store):
    """A run's key is a function of its spec alone, so the committed stores still resume: every
    record's spec gives back the key it was stored under."""
    records = _committed(store)
    assert records
    assert all(RunSpec.from_dict(r).key == r["key"] for r in records)


def test_a_record_has_the_fields_of_the_committed_stores(digits):
    record = run_protocol(RunSpec("cvae", "digits", "one-class", 2, 0, QUICK, ("recon", "kl")),
                          digits).record.to_dict()
    # a committed record with more than one score (classical detectors have one)
    committed = next(r for r in reversed(_committed("epochs10")) if len(r["scores"]) > 1)
    # the resolved architecture came after epochs10 (dcvae 0.2 ran every VAE on the grid's or the MLP)
    assert set(record) == set(committed) - {"reused_from"} | {"architecture"}
    assert record["architecture"]["backbone"] == "mlp"  # CVAE's own backbone
    # the headline score keeps its ROC curve, every other score its figures only
    assert set(record["metrics"]["recon"]) == set(committed["metrics"][committed["scores"][0]])
    assert set(record["metrics"]["kl"]) == set(committed["metrics"][committed["scores"][1]])
    assert RunRecord.__dataclass_fields__.keys() - {"target_class", "error", *FACTORS_FIELDS} <= set(record)
    assert not set(FACTORS_FIELDS) & set(record)  # a detection record is as it was


@pytest.mark.slow
def test_a_committed_record_is_reproduced_from_scratch(tmp_path):
    """dCVAE on KMNIST, held-out class 0, 1 epoch (benchmarks/tuned.toml): the same AUC for every
    score as the record committed from an earlier version of the run path."""
    data_root = Path(__file__).parents[3] / "shared" / "data"
    try:
        data = load_dataset("kmnist", download=False)
    except FileNotFoundError:
        if not (data_root / "kmnist").is_dir():
            pytest.skip("KMNIST not found (set DCVAE_DATA to shared/data)")
        data = load_dataset("kmnist", data_root, download=False)
    [record] = [r for r in _committed("tuned") if r["key"] == "a6001869227690553f1e"]
    again = run_protocol(RunSpec.from_dict(record), data).record.to_dict()
    for score, metrics in record["metrics"].items():
        assert again["metrics"][score]["auc"] == pytest.approx(metrics["auc"], abs=1e-6), score


# ----------------------------------------------------------------------------- protocol "factors"

@pytest.fixture(scope="module")
def sprites():
    return DSpritesDataset(subsample=1500).load()  # 1,200 train / 300 test, generated


@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_a_factors_run_records_what_the_library_function_measures(sprites, model):
    settings = {"epochs": 1, "hidden_dims": [64, 32], "latent_dim": 4, "batch_size": 100, "eval_size": 240}
    result = run_protocol(RunSpec(model, "dsprites", "factors", -1, 3, settings, ("recon",)), sprites)
    record = result.record.to_dict()
    rows = evaluation_rows(len(sprites.test), 240)
    assert len(rows) == len(set(rows)) == 240
    # the record is the library function on the same model, images, factors and seed
    direct = measure_disentanglement(result.detector, sprites.test.x[rows], sprites.factors.test[rows],
                                     condition_factor=0, condition_names=sprites.class_names, seed=3)
    assert record["disentanglement"] == direct
    told_the_shape = model == "cvae"
    assert set(direct) == {"remaining", "per_class"} | (set() if told_the_shape else {"all"})
    for measured in direct.values():
        assert set(measured) == set(METRICS) and all(0.0 <= v <= 1.0 for v in measured.values())
    # every class trained, with c = the shape; nothing held out, nothing detected
    assert (record["class"], record["class_name"], record["n_anomalies"]) == (-1, "all", 0)
    assert record["condition_factor"] == "shape" and record["n_test"] == 240
    assert record["n_train"] + record["n_validation"] == len(sprites.train)
    assert record["steps"] == record["epochs_run"] * -(-record["n_train"] // 100)
    assert record["metrics"] == {} and record["auc"] is None


def test_the_factors_protocol_needs_a_dataset_with_factors(digits, sprites):
    with pytest.raises(ValueError, match="digits has no known factors"):
        factors_split(digits)
    split = factors_split(sprites, seed=0, train_size=600)
    assert len(split.train) + len(split.validation) == 600
    assert split.condition_names == ("square", "ellipse", "heart") and not split.test_labels.any()
