"""Damaged model directories and training checkpoints: refused naming the file, or loaded and
usable; see tests/hostile.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hostile import (  # noqa: F401  (fixtures)
    ANY_REASON,
    IMAGE_SHAPE,
    Verdict,
    _judge,
    _settings,
)
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from dcvae.detector import AnomalyDetector
from dcvae.io.model_dir import data_files, load_model
from dcvae.models import build_model
from dcvae.training import TensorData, TrainConfig, Trainer
from dcvae.training.checkpoint import TrainingState, load_checkpoint

pytestmark = pytest.mark.usefixtures("hostile_counts")  # fixtures: tests/conftest.py

# ------------------------------------------------------------------------------ 3. model files


@pytest.fixture(scope="module")
def saved_files(detectors, tmp_path_factory):
    """The bytes of a saved dCVAE detector and of a 1-epoch training checkpoint."""
    root = tmp_path_factory.mktemp("saved")
    detectors["dcvae"].save(root / "model")
    model = build_model("dcvae", input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8],
                        condition_names=["a", "b"])
    rng = np.random.default_rng(1)
    train = TensorData.from_numpy(rng.integers(0, 256, (12, 1, 4, 4), dtype=np.uint8), np.arange(12) % 2)
    checkpoint = root / "checkpoint.safetensors"
    config = TrainConfig(epochs=1, batch_size=4)
    Trainer(model, config, progress=False).fit(train, train, checkpoint=checkpoint)
    with safe_open(str(checkpoint), framework="pt") as handle:
        meta = json.loads(handle.metadata()["dcvae"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    return Saved({
        "config": (root / "model" / "config.json").read_bytes(),
        "weights": data_files(root / "model")[0].read_bytes(),
        "weights_name": data_files(root / "model")[0].name,
        "arrays": {data_files(root / "model")[1].name: data_files(root / "model")[1].read_bytes()},
        "checkpoint": checkpoint.read_bytes(), "checkpoint_meta": meta, "checkpoint_tensors": tensors,
        "train": train, "config_obj": config,
    })


class Saved(dict):
    """The saved files' bytes; kept out of failure reports."""

    def __repr__(self) -> str:
        return f"Saved({sorted(self)})"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
    | st.sampled_from(["mlp", "conv", "dcvae", "vae", "bernoulli", "gaussian", "0", "recon"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
DEEP = "\u0000deep"
HUGE = "\u0000huge"


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@dataclass(frozen=True)
class Mutant:
    """Damaged JSON text; shown in a failure report by what was done to it, not in full."""

    text: str
    what: str

    def __repr__(self) -> str:
        return f"Mutant({self.what}: {self.text[:200]!r}{'...' if len(self.text) > 200 else ''})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@st.composite
def json_mutants(draw, original: dict[str, Any]) -> Mutant:
    """JSON text: the original with one value replaced, a key dropped or added, or bytes-level damage."""
    meta = json.loads(json.dumps(original))
    paths = [p for p in _paths(meta) if p]
    path = draw(st.sampled_from(paths))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "deep", "huge", "scale"]))
    if action == "drop":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=5))] = draw(JSON_VALUES)
    elif action == "deep":
        parent[path[-1]] = DEEP
    elif action == "huge":
        parent[path[-1]] = HUGE
    elif action == "scale" and _is_number(parent[path[-1]]):
        parent[path[-1]] = parent[path[-1]] * draw(st.sampled_from([-1, 0, 10**3, 10**8, 10**12]))
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    text = json.dumps(meta)
    text = text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    return Mutant(text.replace(json.dumps(HUGE), "7" * 5000), f"{action} at {list(path)}")


@st.composite
def byte_mutants(draw, original: bytes) -> bytes | None:
    """Damaged bytes, or None: the file is missing."""
    actions = ["truncate", "flip", "flips", "insert", "random", "empty"] * 4 + ["missing"]
    action = draw(st.sampled_from(actions))
    if action == "missing":
        return None
    blob = bytearray(original)
    if action == "truncate":
        return bytes(blob[:draw(st.integers(0, len(blob) - 1))])
    if action == "random":
        return draw(st.binary(max_size=400))
    if action == "empty":
        return b""
    if action == "insert":
        at = draw(st.integers(0, len(blob)))
        return bytes(blob[:at]) + draw(st.binary(min_size=1, max_size=8)) + bytes(blob[at:])
    for _ in range(1 if action == "flip" else draw(st.integers(2, 8))):
        # the header (JSON) of a safetensors file is at the front: aim there half of the time
        limit = min(len(blob), 600) if draw(st.booleans()) else len(blob)
        at = draw(st.integers(0, limit - 1))
        blob[at] ^= draw(st.integers(1, 255))
    return bytes(blob)


PROBE = np.random.default_rng(5).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)


@_settings(300)
@given(data=st.data())
def test_damaged_model_files_are_refused_naming_the_file_or_load(saved_files, scratch, data):
    target = data.draw(st.sampled_from(["config.json", saved_files["weights_name"]]), label="file")
    if target == "config.json" and data.draw(st.booleans()):
        blob = data.draw(json_mutants(json.loads(saved_files["config"])), label="json").text.encode()
    else:
        blob = data.draw(byte_mutants(saved_files["config" if target == "config.json" else "weights"]),
                         label="bytes")
    folder = scratch() / "model"
    folder.mkdir()
    (folder / "config.json").write_bytes(saved_files["config"])
    (folder / saved_files["weights_name"]).write_bytes(saved_files["weights"])
    for name, arrays in saved_files["arrays"].items():
        (folder / name).write_bytes(arrays)
    if blob is None:
        (folder / target).unlink()
    else:
        (folder / target).write_bytes(blob)
    loader = data.draw(st.sampled_from(["detector", "load_model"]), label="loader")
    call = (lambda: AnomalyDetector.load(folder)) if loader == "detector" else (lambda: load_model(folder))
    verdict = Verdict([("not found",)]) if blob is None else ANY_REASON
    loaded = _judge(verdict, call, area="files.model",
                    names=(target, "config.json", str(folder)))
    if loaded is None:
        return
    if loader == "detector":
        # a file that loads must score like a model: finite scores, or a refusal that says why
        verdict = Verdict(maybe=[("finite", "shape", "[0, 1]", "condition")])
        model = loaded.model_
        probe = (PROBE if model.config.input_shape == IMAGE_SHAPE
                 else np.zeros((3, *model.config.input_shape), dtype=np.uint8))
        scores = _judge(verdict, lambda: loaded.decision_function(probe), area="files.model")
        assert scores is None or (scores.shape == (3,) and np.isfinite(scores).all())
        if set(loaded.thresholds_) != {"given", "marginal"}:
            pytest.fail(f"loaded thresholds {loaded.thresholds_}")
    else:
        assert isinstance(loaded.model, torch.nn.Module)


@_settings(200)
@given(data=st.data())
def test_damaged_checkpoints_are_refused_naming_the_file_or_resume(saved_files, scratch, data):
    path = scratch() / "checkpoint.safetensors"
    if data.draw(st.booleans(), label="metadata"):
        text = data.draw(json_mutants(saved_files["checkpoint_meta"]), label="json").text
        tensors = dict(saved_files["checkpoint_tensors"])
        if tensors and data.draw(st.booleans(), label="tensor damage"):
            key = data.draw(st.sampled_from(sorted(tensors)), label="tensor")
            tensors[key] = data.draw(st.sampled_from([torch.zeros(0), torch.full((3,), float("nan")),
                                                      torch.ones(2, 2, dtype=torch.float64)]))
        save_file(tensors, str(path), metadata={"dcvae": text})
    else:
        blob = data.draw(byte_mutants(saved_files["checkpoint"]), label="bytes")
        if blob is not None:
            path.write_bytes(blob)
    verdict = ANY_REASON if path.exists() else Verdict([("no checkpoint",)])
    state = _judge(verdict, lambda: load_checkpoint(path), area="files.checkpoint",
                   names=(path.name,))
    if state is None:
        return
    assert isinstance(state, TrainingState)
    # It loads: resuming from it either continues the run or refuses, naming the checkpoint.
    model = build_model("dcvae", input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8],
                        condition_names=["a", "b"])
    trainer = Trainer(model, saved_files["config_obj"], progress=False)
    train = saved_files["train"]
    history = _judge(ANY_REASON, lambda: trainer.fit(train, train, checkpoint=path, resume=True),
                     area="files.checkpoint", names=(path.name,))
    if history is not None:
        assert all(torch.isfinite(p).all() for p in model.parameters())

