"""Saved models: safetensors + a strict JSON config, reloaded bit-identically, never unpickled."""

import ast
import contextlib
import errno
import io
import json
import pathlib
import pickle
import re
import shutil
import tokenize

import numpy as np
import pytest
import torch

import dcvae
from dcvae.detector import AnomalyDetector
from dcvae.io import model_dir
from dcvae.io.model_dir import CONFIG_FILE, ModelFileError, data_files, load_model, save_model
from dcvae.models import MODELS, build_model
from dcvae.scoring import anomaly_scores
from dcvae.training import History, TrainConfig

SRC = pathlib.Path(dcvae.__file__).parent
CONDITIONS = ["a", "b", "c"]


def _model(name, seed=0, **hyper):
    """An untrained model whose every tensor (weights, priors, buffers) is moved off its init."""
    torch.manual_seed(seed)
    model = build_model(name, input_shape=[1, 8, 8], hidden_dims=[32, 16], latent_dim=3,
                        condition_names=CONDITIONS, **hyper)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.3 * torch.randn_like(tensor))
    return model


def _inputs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8), np.arange(n) % len(CONDITIONS)


def _all_scores(model, x, c):
    return {(score, mode): anomaly_scores(model, x, None if mode == "marginal" else c, score=score)
            for score in ("recon", "elbo", "kl") for mode in ("given", "marginal")}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_then_load_scores_bit_identically(name, tmp_path):
    model = _model(name)
    if name == "dcvae":  # the learned conditional prior must travel with the weights
        assert model.conditional_prior.mean.abs().sum() > 0
    x, c = _inputs()
    before = _all_scores(model, x, c)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").model
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    for key, value in _all_scores(loaded, x, c).items():
        assert np.array_equal(value, before[key]), key
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_dcvae_mixture_prior_travels_with_the_weights(tmp_path):
    model = _model("dcvae", prior_components=3)
    x, c = _inputs()
    before = {**_all_scores(model, x, c), "prior": anomaly_scores(model, x, score="prior")}
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").model
    assert loaded.config.prior_components == 3
    after = {**_all_scores(loaded, x, c), "prior": anomaly_scores(loaded, x, score="prior")}
    for key, value in after.items():
        assert np.array_equal(value, before[key]), key


def test_gaussian_model_keeps_its_standardisation_and_output_variance(tmp_path):
    torch.manual_seed(0)
    model = build_model("vae", input_shape=[5], hidden_dims=[32, 16], latent_dim=2,
                        likelihood="gaussian")
    with torch.no_grad():
        model.input_shift.copy_(torch.tensor([1.0, -2.0, 3.0, 0.5, 10.0]))
        model.input_scale.copy_(torch.tensor([2.0, 0.5, 1.0, 4.0, 3.0]))
        model.likelihood.logvar.fill_(-0.7)
    x = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32) * 3
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").model
    for score in ("recon", "elbo"):
        assert np.array_equal(anomaly_scores(loaded, x, score=score),
                              anomaly_scores(model, x, score=score))


def test_fitted_detector_round_trips_through_its_directory(tmp_path):
    digits = dcvae.load_dataset("digits")
    x, y = digits.train.x[:200], digits.train.y[:200]
    det = AnomalyDetector("dcvae", hidden_dims=(32, 16), latent_dim=2, epochs=1, progress=False)
    det.fit(x, c=y)
    det.save(tmp_path / "m")
    again = AnomalyDetector.load(tmp_path / "m")
    test = digits.test.x[:50]
    assert np.array_equal(again.decision_function(test), det.decision_function(test))
    assert again.thresholds_ == det.thresholds_


def test_config_json_names_model_hyperparameters_shape_conditions_and_version(tmp_path):
    model = _model("dcvae", beta=2.5, gamma=0.5)
    history = History(epochs=[{"epoch": 1, "train": {"loss": 3.0}}], best_epoch=1)
    save_model(model, tmp_path / "m", training=TrainConfig(epochs=7, lr=0.01), history=history)
    meta = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert meta["model"] == "dcvae"
    assert meta["library_version"] == dcvae.__version__
    config = meta["config"]
    assert config["input_shape"] == [1, 8, 8]
    assert config["condition_names"] == CONDITIONS
    assert config["latent_dim"] == 3
    assert config["hidden_dims"] == [32, 16]
    assert (config["beta"], config["gamma"]) == (2.5, 0.5)
    assert meta["training"]["epochs"] == 7 and meta["training"]["lr"] == 0.01
    saved = load_model(tmp_path / "m")
    assert saved.training == TrainConfig(epochs=7, lr=0.01)
    assert saved.history.best_epoch == 1
    assert saved.library_version == dcvae.__version__
    weights, arrays = data_files(tmp_path / "m")
    assert arrays is None and re.fullmatch(r"model-[0-9a-f]{16}\.safetensors", weights.name)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_FILE, weights.name]


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def saved(tmp_path):
    return save_model(_model("dcvae"), tmp_path / "m")


def _edit(path, change):
    meta = json.loads((path / CONFIG_FILE).read_text())
    change(meta)
    (path / CONFIG_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(extra=1), r"unknown field\(s\) \['extra'\]"),
    (lambda m: m.pop("model"), r"missing field\(s\) \['model'\]"),
    (lambda m: m.update(format="pythae"), "field 'format'"),
    (lambda m: m.update(library_version="9.0.0"), "field 'library_version' is '9.0.0'"),
    (lambda m: m.update(library_version=1), "field 'library_version'"),
    (lambda m: m.update(model="dcvea"), "unknown model 'dcvea'"),
    (lambda m: m.update(model=3), "field 'model' must be a string"),
    (lambda m: m["config"].update(latent_dim="16"), "config.latent_dim: expected an integer"),
    (lambda m: m["config"].update(hidden_dims=32), "config.hidden_dims: expected a list"),
    (lambda m: m["config"].update(dropout=0.5), r"unknown key\(s\) \['dropout'\]"),
    (lambda m: m["config"].update(beta=-1.0), "beta must be >= 0"),
    (lambda m: m["config"].update(beta=float("nan")), "config.beta: expected a finite number"),
    (lambda m: m["config"].update(gamma=float("inf")), "config.gamma: expected a finite number"),
    (lambda m: m.update(training={"epochs": "many"}), "training.epochs"),
    (lambda m: m.update(detector=[1, 2]), "field 'detector' must be an object"),
    (lambda m: m.update(history={"epochs": 5}), "history.epochs: expected a list of objects"),
    (lambda m: m.update(history={"epochs": [], "best_epoch": "2"}), "history.best_epoch"),
    (lambda m: m.update(history={"epochs": [], "stopped_early": "no"}), "history.stopped_early"),
    (lambda m: m.update(history={"epochs": [], "lr": 3}), r"history: unknown key\(s\) \['lr'\]"),
    (lambda m: m["config"].update(latent_dim=5), r"tensor '[\w.]+' has shape .* config.json implies"),
    (lambda m: m["config"].update(condition_names=["a", "b"]),
     r"tensor 'conditional_prior\.\w+' has shape \(3, 3\) .* implies \(2, 3\)"),
])
def test_config_that_does_not_match_is_refused_naming_the_field(saved, change, message):
    _edit(saved, change)
    with pytest.raises(ModelFileError, match=message):
        load_model(saved)


@pytest.fixture(scope="module")
def saved_detector(tmp_path_factory):
    digits = dcvae.load_dataset("digits")
    det = AnomalyDetector("vae", hidden_dims=(32, 16), latent_dim=2, epochs=1, progress=False)
    return det.fit(digits.train.x[:100]).save(tmp_path_factory.mktemp("det") / "m")


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("score"), "field 'detector' must hold \\['contamination'"),
    (lambda d: d.update(score=5), "'detector.score' must be a string"),
    (lambda d: d.update(score="mahalanobis"), "field 'detector': unknown score 'mahalanobis'"),
    (lambda d: d.update(contamination="0.1"), "'detector.contamination' must be a number, got '0.1'"),
    (lambda d: d.update(contamination=0.7), r"contamination must be in \[0, 0.5\]"),
    (lambda d: d.update(validation_fraction=None), "'detector.validation_fraction' must be a number"),
    (lambda d: d.update(thresholds={"given": 1.0}), "'detector.thresholds' must map"),
    (lambda d: d.update(thresholds={"given": True, "marginal": 1.0}), "'detector.thresholds' must map"),
    (lambda d: d.update(thresholds={"given": float("nan"), "marginal": 1.0}), "finite numbers"),
    (lambda d: d.update(input={"pixels": 1}), "'detector.input' must be an object"),
    (lambda d: d.update(input={"size": [0, 8]}), "'detector.input' must be an object"),
    (lambda d: d.update(input={"condition_column": True}), "'detector.input' must be an object"),
    (lambda d: d.update(input={"colour": "rgb"}), "'detector.input' must be an object"),
])
def test_detector_settings_that_do_not_match_are_refused(saved_detector, tmp_path, change, message):
    path = tmp_path / "m"
    shutil.copytree(saved_detector, path)
    _edit(path, lambda m: change(m["detector"]))
    with pytest.raises(ModelFileError, match=message):
        AnomalyDetector.load(path)


def test_a_plain_model_directory_is_not_a_detector(saved):
    load_model(saved)  # a valid model ...
    with pytest.raises(ModelFileError, match="was this model saved by AnomalyDetector.save"):
        AnomalyDetector.load(saved)  # ... without the detector's threshold


def test_config_that_is_not_json_is_refused(saved):
    (saved / CONFIG_FILE).write_text("{'model': 'dcvae'}")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(saved)
    (saved / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="expected a JSON object"):
        load_model(saved)


def test_missing_files_are_named(saved, tmp_path):
    weights = data_files(saved)[0]
    weights.unlink()
    with pytest.raises(ModelFileError, match=f"{weights.name} not found"):
        load_model(saved)
    with pytest.raises(ModelFileError, match=f"{CONFIG_FILE} not found"):
        load_model(tmp_path)


def test_corrupt_weights_are_refused(saved):
    weights = data_files(saved)[0]
    good = weights.read_bytes()
    for bad in (b"\x00" * 64, good[: len(good) // 2], b"not safetensors at all"):
        weights.write_bytes(bad)
        with pytest.raises(ModelFileError, match="not a valid safetensors file"):
            load_model(saved)


def test_weights_of_another_model_are_refused(saved, tmp_path):
    other = save_model(_model("vae"), tmp_path / "vae")
    data_files(saved)[0].write_bytes(data_files(other)[0].read_bytes())
    with pytest.raises(ModelFileError, match=r"missing tensors \['conditional_prior"):
        load_model(saved)


def test_saving_over_a_file_is_refused(tmp_path):
    (tmp_path / "m").write_text("precious")
    with pytest.raises(ModelFileError, match="not a directory"):
        save_model(_model("vae"), tmp_path / "m")
    assert (tmp_path / "m").read_text() == "precious"


# --------------------------------------------------------------------------- saved as one unit


def _same_weights(loaded, model):
    state = loaded.model.state_dict()
    return all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_save_killed_before_config_json_leaves_the_previous_model_whole(tmp_path, monkeypatch):
    old, new = _model("dcvae", seed=0), _model("dcvae", seed=1)
    path = save_model(old, tmp_path / "m", history=History(best_epoch=1), arrays={"a": np.ones(3)})

    def killed(*args, **kwargs):  # the kill comes after the new data files, before config.json
        raise KeyboardInterrupt
    monkeypatch.setattr(model_dir, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(new, path, history=History(best_epoch=2), arrays={"a": np.zeros(3)})
    monkeypatch.undo()
    loaded = load_model(path)  # the old weights, under the old config.json, with the old arrays
    assert _same_weights(loaded, old) and not _same_weights(loaded, new)
    assert loaded.history.best_epoch == 1 and loaded.arrays["a"].tolist() == [1.0, 1.0, 1.0]
    save_model(new, path)  # the next save removes what the killed one left
    weights, arrays = data_files(path)
    assert arrays is None and sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, weights.name]
    assert _same_weights(load_model(path), new)


def test_a_full_disk_during_a_re_save_keeps_the_previous_model(tmp_path, monkeypatch):
    old, new = _model("dcvae", seed=0), _model("dcvae", seed=1)
    path = save_model(old, tmp_path / "m", arrays={"a": np.ones(3)})
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    real = model_dir.atomic_file

    @contextlib.contextmanager
    def full_disk(target):  # the disk fills while the second data file (the arrays) is written
        with real(target) as fh:
            if pathlib.Path(target).name.startswith("arrays-"):
                raise OSError(errno.ENOSPC, "No space left on device", str(target))
            yield fh
    monkeypatch.setattr(model_dir, "atomic_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_model(new, path, arrays={"a": np.zeros(3)})
    monkeypatch.undo()
    assert _same_weights(load_model(path), old)
    after = {p.name: p.read_bytes() for p in path.iterdir() if not p.name.startswith("model-")}
    assert after == {k: v for k, v in before.items() if not k.startswith("model-")}  # no temp file


def test_a_directory_of_dcvae_0_2_with_fixed_names_loads(tmp_path):
    model = _model("dcvae")
    path = save_model(model, tmp_path / "m", arrays={"a": np.ones(3)})
    weights, arrays = data_files(path)
    weights.rename(path / "model.safetensors")
    arrays.rename(path / "arrays.safetensors")
    _edit(path, lambda meta: meta.pop("files"))
    loaded = load_model(path)
    assert _same_weights(loaded, model) and loaded.arrays["a"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["../model-0123456789abcdef.safetensors", "/etc/passwd",
                                  "arrays-0123456789abcdef.safetensors", 7])
def test_config_json_naming_a_file_outside_its_kind_is_refused(saved, name):
    _edit(saved, lambda meta: meta["files"].update(weights=name))
    with pytest.raises(ModelFileError, match="field 'files.weights' must be a file name"):
        load_model(saved)


# --------------------------------------------------------------------------- never unpickle


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that a loader ran code from a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _payloads(marker):
    raw = pickle.dumps(_TouchOnUnpickle(marker))
    buffer = io.BytesIO()
    torch.save({"encoder.net.0.weight": _TouchOnUnpickle(marker)}, buffer)  # a .pt checkpoint
    return {"pickle": raw, "torch.save": buffer.getvalue()}


def test_the_planted_payload_is_live(tmp_path):
    """Control: the payload really does create its marker when something unpickles it."""
    marker = tmp_path / "control"
    pickle.loads(_payloads(marker)["pickle"])
    assert marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
@pytest.mark.parametrize("target", ["weights", CONFIG_FILE])
@pytest.mark.parametrize("loader", [load_model, AnomalyDetector.load])
def test_a_planted_pickle_is_refused_and_never_run(saved, tmp_path, kind, target, loader):
    marker = tmp_path / "pwned"
    (data_files(saved)[0] if target == "weights" else saved / target).write_bytes(_payloads(marker)[kind])
    with pytest.raises(ValueError, match="not valid JSON|not a valid safetensors file") as err:
        loader(saved)
    assert isinstance(err.value, ModelFileError)
    assert not marker.exists()


def test_pickles_beside_a_valid_model_are_ignored(saved, tmp_path):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)
    for name in ("model.pt", "pytorch_model.bin", "weights.pkl", "detector.joblib"):
        (saved / name).write_bytes(payload["torch.save" if name.endswith((".pt", ".bin")) else "pickle"])
    load_model(saved)
    assert not marker.exists()


def _code_tokens(path):
    """The NAME and OP tokens of a source file: comments and docstrings cannot match."""
    with open(path, "rb") as fh:
        return [t.string for t in tokenize.tokenize(fh.readline)
                if t.type in (tokenize.NAME, tokenize.OP)]


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_the_library_source_never_unpickles(path):
    tokens = _code_tokens(path)
    assert not UNSAFE_MODULES & set(tokens), f"{path.name} names an unpickling module"
    pairs = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    assert ("torch", ".", "load") not in pairs, f"{path.name} calls torch.load"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("np", "numpy")):
            flags = {k.arg: k.value for k in node.keywords}
            assert "allow_pickle" in flags, f"{path.name}:{node.lineno} np.load without allow_pickle"
            assert isinstance(flags["allow_pickle"], ast.Constant) and flags["allow_pickle"].value is False
