"""A saved model is a directory: ``config.json`` + ``model.safetensors`` (+ ``arrays.safetensors``).
Nothing is ever unpickled.

``config.json`` holds the model name, its hyper-parameters (with input shape and condition names),
the training config and history, the library version, and optional detector settings;
``arrays.safetensors`` optional fitted arrays of the detector (its scores on the normal validation
carve and on its training data). Every field is checked on load; a file that does not match is
refused with a message naming the field.

Files written by dcvae 0.1 load unchanged in meaning: their beta-TCVAE weights and the Gaussian
likelihood's variance are renamed on the way in (see ``_MIGRATIONS``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from dcvae import __version__
from dcvae.classical import ClassicalModel
from dcvae.config import ConfigError
from dcvae.io.atomic import atomic_write, atomic_write_text
from dcvae.models import VAE, model_class
from dcvae.training import History, TrainConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ARRAYS_FILE = "arrays.safetensors"
FORMAT = "dcvae.model"
_KEYS = {"format", "library_version", "model", "config", "training", "history", "detector"}


class ModelFileError(ValueError):
    """A saved model directory is missing, unreadable, or does not match this library."""


@dataclass
class SavedModel:
    model: VAE | ClassicalModel
    training: TrainConfig | None
    history: History | None
    detector: dict[str, Any] | None
    library_version: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def save_model(model: VAE | ClassicalModel, path: str | os.PathLike[str], *,
               training: TrainConfig | None = None,
               history: History | None = None, detector: dict[str, Any] | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Save ``model`` (and what produced it) as a model directory at ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{path} exists and is not a directory; a model is saved as a directory")
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "library_version": __version__,
        "model": model.name,
        "config": model.config.to_dict(),
        "training": None if training is None else training.to_dict(),
        "history": None if history is None else history.to_dict(),
        "detector": detector,
    }
    # weights first: a config.json only ever describes weights that are already complete
    if isinstance(model, ClassicalModel):  # its fitted data, as arrays
        data = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
        atomic_write(path / WEIGHTS_FILE, lambda tmp: save_numpy(data, str(tmp)))
    else:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    if arrays:
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        atomic_write(path / ARRAYS_FILE, lambda tmp: save_numpy(contiguous, str(tmp)))
    else:
        (path / ARRAYS_FILE).unlink(missing_ok=True)  # none of an earlier model's arrays linger
    atomic_write_text(path / CONFIG_FILE, json.dumps(meta, indent=2, allow_nan=False))
    return path


def _rename(mapping: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    return {mapping.get(k, k): v for k, v in data.items()}


#: dcvae 0.1 → 0.2: names that changed, as (model config keys, weight keys) per model name
#: ("*" for every model).
_MIGRATIONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "beta-tcvae": ({"alpha": "mi_weight", "beta": "tc_weight", "gamma": "dimwise_kl_weight"}, {}),
    "*": ({}, {"output_logvar": "likelihood.logvar"}),
}


def _migrate(version: str, model: str, config: Any, tensors: dict[str, torch.Tensor] | None
             ) -> tuple[Any, dict[str, torch.Tensor] | None]:
    if not version.startswith("0.1."):
        return config, tensors
    for name in (model, "*"):
        config_names, weight_names = _MIGRATIONS.get(name, ({}, {}))
        if isinstance(config, dict):
            config = _rename(config_names, config)
        if tensors is not None:
            tensors = _rename(weight_names, tensors)
    return config, tensors


def _read_meta(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ModelFileError(f"{path} is not a saved dcvae model: {CONFIG_FILE} not found")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: JSON, huge ints
        raise ModelFileError(f"{config_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{config_path}: expected a JSON object")
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise ModelFileError(f"{config_path}: unknown field(s) {unknown}")
    missing = sorted({"format", "library_version", "model", "config"} - set(meta))
    if missing:
        raise ModelFileError(f"{config_path}: missing field(s) {missing}")
    if meta["format"] != FORMAT:
        raise ModelFileError(f"{config_path}: field 'format' is {meta['format']!r}, expected {FORMAT!r}")
    version = meta["library_version"]
    if not isinstance(version, str) or version.split(".")[0] != __version__.split(".")[0]:
        raise ModelFileError(
            f"{config_path}: field 'library_version' is {version!r}; this is dcvae {__version__} "
            "and reads models of the same major version only"
        )
    for key in ("training", "history", "detector"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise ModelFileError(f"{config_path}: field {key!r} must be an object or null")
    return meta


def load_model(path: str | os.PathLike[str], *, device: str = "cpu") -> SavedModel:
    """Load a model directory written by ``save_model``; refuses anything that does not match."""
    path = Path(path)
    meta = _read_meta(path)
    version = meta["library_version"]
    try:
        cls = model_class(meta["model"]) if isinstance(meta["model"], str) else None
        if cls is None:
            raise ValueError(f"field 'model' must be a string, got {meta['model']!r}")
        raw_config, _ = _migrate(version, meta["model"], meta["config"], None)
        config = cls.config_class.from_dict(raw_config, where="config")
        training = (None if meta.get("training") is None
                    else TrainConfig.from_dict(meta["training"], where="training"))
        history = None if meta.get("history") is None else History.from_dict(meta["history"])
    except (ValueError, ConfigError) as err:
        raise ModelFileError(f"{path / CONFIG_FILE}: {err}") from None
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelFileError(f"{path}: {WEIGHTS_FILE} not found")
    if issubclass(cls, ClassicalModel):
        try:
            model: VAE | ClassicalModel = cls.from_state(config, load_numpy(str(weights_path)))
        except (SafetensorError, OSError) as err:
            raise ModelFileError(f"{weights_path} is not a valid safetensors file: {err}") from None
        except ValueError as err:
            raise ModelFileError(f"{weights_path} does not fit config.json ({meta['model']}): "
                                 f"{err}") from None
    else:
        model = _load_vae(cls, config, weights_path, version, meta["model"], device)
    return SavedModel(model, training, history, meta.get("detector"), version, _read_arrays(path))


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays_path = path / ARRAYS_FILE
    if not arrays_path.is_file():
        return {}
    try:
        arrays = load_numpy(str(arrays_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{arrays_path} is not a valid safetensors file: {err}") from None
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ModelFileError(f"{arrays_path}: array {name!r} holds NaN or infinite values")
    return arrays


def _load_vae(cls: type[VAE], config: Any, weights_path: Path, version: str, name: str,
              device: str) -> VAE:
    """A VAE from its weights, each checked against the shapes its config implies."""
    with torch.device("meta"):  # shapes only: a config.json promising a huge model allocates nothing
        skeleton = cls(config)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{weights_path} is not a valid safetensors file: {err}") from None
    _, migrated = _migrate(version, name, None, tensors)
    assert migrated is not None
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(migrated))
    unexpected = sorted(set(migrated) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{weights_path} does not match config.json ({name}): "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for key, value in migrated.items():
        if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
            raise ModelFileError(
                f"{weights_path}: tensor {key!r} has shape {tuple(value.shape)} {value.dtype}, but "
                f"config.json implies {tuple(expected[key].shape)} {expected[key].dtype}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ModelFileError(f"{weights_path}: tensor {key!r} holds NaN or infinite values")
    model = cls(config)
    model.load_state_dict(migrated)
    model.to(torch.device(device)).eval()
    return model
