"""A saved model is a directory: ``config.json`` + a weights file (+ an arrays file), both
safetensors. Nothing is ever unpickled.

The directory is saved as one unit: the weights and arrays go to new files named by their content
(``model-<sha256 prefix>.safetensors``), and ``config.json``, which names them in its ``files``
field, is replaced last, in one atomic rename. A save killed at any point, or failing on a full
disk, leaves the previous model whole; the files it no longer names are removed after the rename.
Directories of dcvae 0.1 and 0.2 have no ``files`` field and fixed names (``model.safetensors``,
``arrays.safetensors``); they load unchanged.

``config.json`` holds the model name, its hyper-parameters (with input shape and condition names),
the training config and history, the library version, and optional detector settings;
``arrays.safetensors`` optional fitted arrays of the detector (its scores on the normal validation
carve and on its training data). Every field is checked on load; a file that does not match is
refused with a message naming the field.

Files written by dcvae 0.1 load unchanged in meaning: their beta-TCVAE weights and the Gaussian
likelihood's variance are renamed on the way in (see ``_MIGRATIONS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as numpy_bytes
from safetensors.torch import load_file
from safetensors.torch import save as torch_bytes

from dcvae import __version__
from dcvae.classical import ClassicalConfig, ClassicalModel
from dcvae.config import ConfigError
from dcvae.io.atomic import atomic_file, atomic_write_text
from dcvae.models import VAE, model_class
from dcvae.training import History, TrainConfig

CONFIG_FILE = "config.json"
#: The fixed names of directories written before ``config.json`` named its files.
WEIGHTS_FILE = "model.safetensors"
ARRAYS_FILE = "arrays.safetensors"
FORMAT = "dcvae.model"
_KEYS = {"format", "library_version", "model", "config", "training", "history", "detector", "files"}
#: The data files a save writes: ``<kind>-<16 hex digits of their sha256>.safetensors``.
_DATA_FILE = re.compile(r"(model|arrays)-[0-9a-f]{16}\.safetensors")


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
    meta: dict[str, Any] = {
        "format": FORMAT,
        "library_version": __version__,
        "model": model.name,
        "config": model.config.to_dict(),
        "training": None if training is None else training.to_dict(),
        "history": None if history is None else history.to_dict(),
        "detector": detector,
    }
    if isinstance(model, ClassicalModel):  # its fitted data, as arrays
        weights = numpy_bytes({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()})
    else:
        weights = torch_bytes({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    # the data files first, under new names; config.json, replaced last, is the one commit point
    fitted = numpy_bytes({k: np.ascontiguousarray(v) for k, v in arrays.items()}) if arrays else None
    meta["files"] = {"weights": _write_data(path, "model", weights),
                     "arrays": None if fitted is None else _write_data(path, "arrays", fitted)}
    atomic_write_text(path / CONFIG_FILE, json.dumps(meta, indent=2, allow_nan=False))
    named = set(meta["files"].values())
    for old in path.iterdir():  # what an earlier model, or a killed save, left; never a stranger's file
        ours = _DATA_FILE.fullmatch(old.name) or old.name in (WEIGHTS_FILE, ARRAYS_FILE)
        if ours and old.name not in named:
            old.unlink(missing_ok=True)
    return path


def _write_data(path: Path, kind: str, data: bytes) -> str:
    name = f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    with atomic_file(path / name) as fh:
        fh.write(data)
    return name


def data_files(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """The weights file and the arrays file (None: it has none) that ``config.json`` at ``path``
    names, checked to be plain names inside ``path``."""
    path = Path(path)
    return _data_files(path, _read_meta(path))


def _data_files(path: Path, meta: dict[str, Any]) -> tuple[Path, Path | None]:
    files = meta.get("files")
    if files is None:  # written before config.json named its files
        return path / WEIGHTS_FILE, (path / ARRAYS_FILE if (path / ARRAYS_FILE).is_file() else None)
    where = path / CONFIG_FILE
    if not isinstance(files, dict) or set(files) != {"weights", "arrays"}:
        raise ModelFileError(f"{where}: field 'files' must hold exactly 'weights' and 'arrays'")
    for key, kind in (("weights", "model"), ("arrays", "arrays")):
        name = files[key]
        if not (name is None and key == "arrays") and not (
                isinstance(name, str) and _DATA_FILE.fullmatch(name) and name.startswith(kind)):
            raise ModelFileError(f"{where}: field 'files.{key}' must be a file name like "
                                 f"'{kind}-0123456789abcdef.safetensors', got {name!r}")
    return path / files["weights"], None if files["arrays"] is None else path / files["arrays"]


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
    weights_path, arrays_path = _data_files(path, meta)
    if not weights_path.is_file():
        raise ModelFileError(f"{path}: {weights_path.name} not found")
    if issubclass(cls, ClassicalModel):
        try:
            # config came from cls.config_class, so it is a ClassicalConfig here
            model: VAE | ClassicalModel = cls.from_state(cast(ClassicalConfig, config),
                                                         load_numpy(str(weights_path)))
        except (SafetensorError, OSError) as err:
            raise ModelFileError(f"{weights_path} is not a valid safetensors file: {err}") from None
        except ValueError as err:
            raise ModelFileError(f"{weights_path} does not fit config.json ({meta['model']}): "
                                 f"{err}") from None
    else:
        model = _load_vae(cls, config, weights_path, version, meta["model"], device)
    return SavedModel(model, training, history, meta.get("detector"), version, _read_arrays(arrays_path))


def _read_arrays(arrays_path: Path | None) -> dict[str, np.ndarray]:
    if arrays_path is None:
        return {}
    if not arrays_path.is_file():
        raise ModelFileError(f"{arrays_path.parent}: {arrays_path.name} not found")
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
