"""A detector as a model directory: the model (``dcvae.io.model_dir``) with the detector's settings
in ``config.json`` and its fitted arrays in the arrays file. Nothing is ever unpickled."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dcvae.detector.config import ARCHITECTURE, FROM_DATA, MODES
from dcvae.io.model_dir import ModelFileError, load_model, save_model
from dcvae.models import VAE
from dcvae.scoring.family import FittedScore
from dcvae.scoring.latent import LatentCodes, LatentGaussians
from dcvae.scoring.scores import MARGINAL
from dcvae.training import History, TrainConfig
from dcvae.training.device import resolve_device

if TYPE_CHECKING:
    from dcvae.detector.estimator import AnomalyDetector

_DETECTOR_KEYS = {"score", "contamination", "validation_fraction", "thresholds"}
_LATER_KEYS = {"score_fits", "input"}
#: What ``detector.input`` may hold, with the type of each entry: how ``fit`` read its data
#: (``pixels``, set by the detector), and how ``dcvae fit`` read its file (the CLI's entries).
INPUT_KEYS: dict[str, tuple[type, ...]] = {"pixels": (bool,), "condition_column": (str, int, type(None)),
                                           "no_conditions": (bool,), "size": (list, type(None))}


def save_detector(det: AnomalyDetector, path: str | os.PathLike[str]) -> Path:
    model = det._fitted()
    detector = {"score": det.anomaly_score_, "contamination": det.contamination,
                "validation_fraction": det.validation_fraction,
                "thresholds": dict(det.thresholds_),
                "score_fits": {mode: fit.to_dict() for mode, fit in det.score_fits_.items()},
                "input": det.__dict__.get("input_", {})}
    arrays = {f"validation_scores.{mode}": v
              for mode, v in det.__dict__.get("validation_scores_", {}).items()}  # none: a 0.1 file
    if "decision_scores_" in det.__dict__:
        arrays.update(decision_scores=det.decision_scores_, labels=det.labels_)
    if getattr(model, "latent_gaussians", None) is not None:
        arrays.update(cast(VAE, model).latent_gaussians.to_arrays())  # only a VAE has them
    if getattr(model, "latent_codes", None) is not None:
        arrays.update(cast(VAE, model).latent_codes.to_arrays())
    return save_model(model, path, training=det.check_settings().training, history=det.history_,
                      detector=detector, arrays=arrays)


def load_detector(cls: type[AnomalyDetector], path: str | os.PathLike[str], *,
                  progress: bool, device: str | None = None) -> AnomalyDetector:
    torch_device = resolve_device(device) if device is not None else None  # checked before reading
    saved = load_model(path)
    info = saved.detector or {}
    # score_fits and input came later: without score_fits the score is a plain one, which needs no
    # statistics; without input, feature vectors are read by their dtype
    if not _DETECTOR_KEYS <= set(info) <= _DETECTOR_KEYS | _LATER_KEYS:
        raise ModelFileError(f"{path}: config.json field 'detector' must hold "
                             f"{sorted(_DETECTOR_KEYS)} (and {sorted(_LATER_KEYS)}); was this model "
                             "saved by AnomalyDetector.save?")
    read = _check_input(path, info.get("input", {}))
    thresholds = info["thresholds"]
    if (not isinstance(thresholds, dict) or set(thresholds) != set(MODES)
            or not all(_is_finite_number(v) for v in thresholds.values())):
        raise ModelFileError(f"{path}: config.json field 'detector.thresholds' must map "
                             f"{list(MODES)} to finite numbers")
    for key in ("contamination", "validation_fraction"):
        if not _is_finite_number(info[key]):
            raise ModelFileError(f"{path}: config.json field 'detector.{key}' must be a number, "
                                 f"got {info[key]!r}")
    if not isinstance(info["score"], str):
        raise ModelFileError(f"{path}: config.json field 'detector.score' must be a string")
    model = saved.model
    cfg = model.config
    if isinstance(model, VAE):
        try:
            model.latent_gaussians = LatentGaussians.from_arrays(saved.arrays, max(model.n_conditions, 1),
                                                                 model.config.latent_dim)
            model.latent_codes = LatentCodes.from_arrays(saved.arrays, max(model.n_conditions, 1),
                                                         model.config.latent_dim)
        except ValueError as err:
            raise ModelFileError(f"{path}: the fitted arrays: {err}") from None
    params = {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
              if f.name not in FROM_DATA and f.name not in ARCHITECTURE}
    train = saved.training or TrainConfig()
    model_settings = {name: getattr(cfg, name) for name in (*ARCHITECTURE, "likelihood")
                      if hasattr(cfg, name)}  # a classical detector has none of these
    if "hidden_dims" in model_settings:
        model_settings["hidden_dims"] = tuple(model_settings["hidden_dims"])
    det = cls(model.name, params=params or None, progress=progress, contamination=info["contamination"],
              validation_fraction=info["validation_fraction"], anomaly_score=info["score"],
              **model_settings, **train.to_dict())
    try:
        plan = det.check_settings()
    except ValueError as err:  # a value out of range, e.g. contamination 0.7
        raise ModelFileError(f"{path}: config.json field 'detector': {err}") from None
    fits = info.get("score_fits", {mode: {} for mode in MODES})
    if not isinstance(fits, dict) or set(fits) != set(MODES):
        raise ModelFileError(f"{path}: config.json field 'detector.score_fits' must map "
                             f"{list(MODES)} to score statistics")
    try:
        det.score_fits_ = {mode: FittedScore.from_dict(plan.recipe, fits[mode]) for mode in MODES}
    except ValueError as err:
        raise ModelFileError(f"{path}: config.json field 'detector.score_fits': {err}") from None
    if torch_device is not None:
        assert device is not None  # torch_device is resolved from it
        det.device = device  # where it scores now; a classical detector runs on the CPU anyway
        if isinstance(model, VAE):
            model.to(torch_device)
    det.model_, det.history_ = model, saved.history or History()
    det.anomaly_score_ = plan.recipe.name
    det.thresholds_ = {k: float(v) for k, v in thresholds.items()}
    det.threshold_ = det.thresholds_[MARGINAL]
    det.n_features_in_ = int(np.prod(cfg.input_shape))
    det.input_ = read
    scores = {mode: saved.arrays.get(f"validation_scores.{mode}") for mode in MODES}
    if all(v is not None for v in scores.values()):  # files of dcvae 0.1 have none
        det.validation_scores_ = {mode: np.asarray(v, dtype=np.float64) for mode, v in scores.items()}
    if "decision_scores" in saved.arrays and "labels" in saved.arrays:
        det.decision_scores_ = np.asarray(saved.arrays["decision_scores"], dtype=np.float64)
        det.labels_ = np.asarray(saved.arrays["labels"], dtype=np.int64)
    return det


def _check_input(path: str | os.PathLike[str], read: Any) -> dict[str, Any]:
    def fits(key: str, value: Any) -> bool:
        if key not in INPUT_KEYS or (isinstance(value, bool) and bool not in INPUT_KEYS[key]):
            return False
        if key == "size" and value is not None:  # [height, width]
            return len(value) == 2 and all(_is_count(v) for v in value)
        return isinstance(value, INPUT_KEYS[key])

    if not isinstance(read, dict) or not all(fits(k, v) for k, v in read.items()):
        raise ModelFileError(f"{path}: config.json field 'detector.input' must be an object with "
                             f"entries among {sorted(INPUT_KEYS)}, got {read!r}")
    return dict(read)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
