"""A PyOD-style detector on top of the core: ``fit``, ``decision_function``, ``predict``.

>>> from dcvae import AnomalyDetector
>>> from dcvae.data import load_dataset
>>> digits = load_dataset("digits")
>>> det = AnomalyDetector("dcvae", epochs=2, progress=False).fit(digits.train.x, digits.train.y)
>>> det.decision_function(digits.test.x[:3]).shape
(3,)
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcvae.config import ConfigError
from dcvae.metrics import calibrate_threshold
from dcvae.models import VAE, model_class
from dcvae.persistence import ModelFileError, load_model, save_model
from dcvae.protocols import stratified_subset
from dcvae.score_family import DEFAULT_SCORE, FittedScore, base_scores, fit_score, parse_score
from dcvae.training import History, TensorData, TrainConfig, Trainer
from dcvae.validation import (
    check_conditions,
    check_inputs,
    condition_indices,
    condition_names_from,
    in_unit_interval,
)

_MODES = ("given", "marginal")
_FROM_DATA = ("input_shape", "condition_names", "likelihood")


class NotFittedError(RuntimeError):
    """The detector was used before ``fit`` (or ``load``)."""


class AnomalyDetector:
    """Train a (conditional) VAE on normal data; score new data; flag what is anomalous.

    Parameters
    ----------
    model: a registered model name: vae, beta-vae, cvae, dcvae, factorvae, rfvae, beta-tcvae.
    latent_dim, backbone ("mlp" | "conv"), hidden_dims, likelihood ("auto" | "bernoulli" |
        "gaussian"; auto = Bernoulli for data in [0, 1], Gaussian on standardised features else).
    epochs, batch_size, lr, secondary_lr, patience, seed, device, precision ("fp32" | "bf16"):
        see ``TrainConfig``; the precision applies to training and scoring alike.
    contamination: expected anomaly fraction in [0, 0.5]; sets the threshold on the validation
        carve of the normal data (0 = the largest validation score).
    validation_fraction: share of the training data held out for early stopping and the threshold.
    score: a score name of ``dcvae.score_family``: "recon" (Eq. 17), "elbo", "kl", "prior",
        "ic-elbo", "typical-elbo", "recon+kl", ...; scores built from several terms or from
        typicality are fitted on the normal validation carve.
    **hyperparameters: the model's own (beta, gamma, alpha, lambda_min, ...).
    """

    def __init__(self, model: str = "dcvae", *, latent_dim: int = 16, backbone: str = "mlp",
                 hidden_dims: tuple[int, ...] = (512, 256), likelihood: str = "auto",
                 epochs: int = 20, batch_size: int = 128, lr: float = 1e-3,
                 secondary_lr: float = 1e-4, patience: int = 5, seed: int = 0,
                 contamination: float = 0.05, validation_fraction: float = 0.1,
                 score: str = DEFAULT_SCORE, device: str = "cpu", precision: str = "fp32",
                 progress: bool = True,
                 **hyperparameters: Any) -> None:
        self.model_name = model
        self.model_kwargs = {"latent_dim": latent_dim, "backbone": backbone,
                             "hidden_dims": tuple(hidden_dims), **hyperparameters}
        self.likelihood = likelihood
        # from_dict checks types too: lr="fast" is named as such, not a comparison error later
        self.train_config = TrainConfig.from_dict(
            {"epochs": epochs, "batch_size": batch_size, "lr": lr, "secondary_lr": secondary_lr,
             "patience": patience, "seed": seed, "device": device, "precision": precision},
            where="training")
        self.contamination = contamination
        self.validation_fraction = validation_fraction
        self.recipe = parse_score(score)  # a bad name fails here, before any training
        self.score = self.recipe.name
        self.progress = progress
        # Check everything now, before any training time is spent.
        cls = model_class(model)
        # input_shape, condition_names and likelihood are read from the data in fit()
        known = {f.name for f in dataclasses.fields(cls.config_class)} - set(_FROM_DATA)
        unknown = sorted(set(self.model_kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown hyper-parameter(s) {unknown} for model {model!r}; "
                              f"it takes {sorted(known)}")
        cls.config_class.from_dict(self.model_kwargs, where=model)  # types and ranges
        if likelihood not in ("auto", "bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'auto', 'bernoulli' or 'gaussian', got {likelihood!r}")
        calibrate_threshold(np.zeros(1), contamination)  # validates the range
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        self.model_: VAE | None = None
        self.history_: History | None = None
        self.thresholds_: dict[str, float] = {}
        self.validation_scores_: dict[str, np.ndarray] = {}
        self.score_fits_: dict[str, FittedScore] = {}

    # ------------------------------------------------------------------------------------ fit
    def fit(self, X: Any, c: Any = None, *, condition_names: tuple[str, ...] | None = None,
            validation: tuple[Any, Any] | None = None,
            checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 1,
            resume: bool = False) -> AnomalyDetector:
        """Train on normal data ``X`` with optional conditions ``c`` (one per sample).

        ``condition_names``: when given, ``c`` holds indices into it. ``validation``: an explicit
        (X_val, c_val) of normal data; otherwise a stratified ``validation_fraction`` is carved.
        ``checkpoint``/``checkpoint_every``/``resume``: see ``Trainer.fit``; a resumed fit ends
        with the same weights as an uninterrupted one.
        """
        x = check_inputs(X)
        if c is None:
            cond, names = np.zeros(len(x), dtype=np.int64), ()
        elif condition_names is not None:
            names = tuple(str(n) for n in condition_names)
            cond = _checked_indices(c, len(x), len(names))
        else:
            cond, names = condition_names_from(c, len(x))
        if validation is None:
            if len(x) < 2:
                raise ValueError("fit needs at least 2 samples: one to train on, one to validate")
            fit_idx, val_idx = stratified_subset(cond, 1.0 - self.validation_fraction,
                                                 self.train_config.seed)
            x_fit, c_fit, x_val, c_val = x[fit_idx], cond[fit_idx], x[val_idx], cond[val_idx]
        else:
            x_fit, c_fit = x, cond
            x_val = check_inputs(validation[0], name="validation X")
            c_val = (np.zeros(len(x_val), dtype=np.int64) if validation[1] is None else
                     _checked_indices(validation[1], len(x_val), len(names)) if condition_names
                     is not None else condition_indices(validation[1], len(x_val), names))
            if x_val.shape[1:] != x.shape[1:]:
                raise ValueError(f"validation X has sample shape {x_val.shape[1:]}, X has {x.shape[1:]}")
        likelihood = self.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if in_unit_interval(x) else "gaussian"
        elif likelihood == "bernoulli" and not in_unit_interval(x):
            raise ValueError("likelihood='bernoulli' needs data in [0, 1] (or uint8 images); "
                             "use likelihood='gaussian' for unbounded features")
        cls = model_class(self.model_name)
        config = cls.config_class.from_dict(
            {**self.model_kwargs, "input_shape": list(x.shape[1:]), "likelihood": likelihood,
             "condition_names": list(names)}, where=self.model_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.train_config.seed)
            model = cls(config)
        if likelihood == "gaussian":
            _standardise(model, x_fit)
        trainer = Trainer(model, self.train_config, progress=self.progress)
        self.history_ = trainer.fit(TensorData.from_numpy(x_fit, c_fit),
                                    TensorData.from_numpy(x_val, c_val), checkpoint=checkpoint,
                                    checkpoint_every=checkpoint_every, resume=resume)
        self.model_ = model.cpu() if self.train_config.device == "cpu" else model
        try:
            self._calibrate(x_val, c_val)
        except ValueError:  # non-finite validation scores: no half-fitted detector without thresholds
            self.model_ = None
            raise
        return self

    def _calibrate(self, x_val: np.ndarray, c_val: np.ndarray) -> None:
        model = self._fitted()
        precision = self.train_config.precision
        conditions = {"given": c_val if model.conditional else None,
                      "marginal": None if model.conditional and model.n_conditions > 1
                      else (c_val if model.conditional else None)}
        for mode, c in conditions.items():
            # the score's statistics come from this normal validation carve, and nothing else
            bases = self._base_scores(x_val, c, precision)
            self.score_fits_[mode] = fit_score(self.recipe, bases)
            self.validation_scores_[mode] = _finite(self.score_fits_[mode](bases), "validation X")
        self.thresholds_ = {mode: calibrate_threshold(self.validation_scores_[mode], self.contamination)
                            for mode in _MODES}

    # ------------------------------------------------------------------------------------ score
    def decision_function(self, X: Any, c: Any = None) -> np.ndarray:
        """Anomaly scores, higher = more anomalous. Conditional models: ``given`` mode with ``c``,
        ``marginal`` mode (minimum over the training conditions) without."""
        model = self._fitted()
        x = self._check_like_training(X)
        indices = None
        if c is not None and model.conditional:
            indices = condition_indices(c, len(x), model.config.condition_names)
        elif c is not None:  # the model ignores conditions, but a c that does not fit X is a mistake
            check_conditions(c, len(x))
        mode = "given" if c is not None else "marginal"
        bases = self._base_scores(x, indices, self.train_config.precision)
        return _finite(self.score_fits_[mode](bases), "X")

    def _base_scores(self, x: np.ndarray, c: np.ndarray | None, precision: str) -> dict[str, np.ndarray]:
        return base_scores(self._fitted(), x, c, self.recipe.bases, precision=precision,
                           batch_size=max(self.train_config.batch_size, 1024))

    score_samples = decision_function

    def predict(self, X: Any, c: Any = None) -> np.ndarray:
        """1 = anomaly (score above the calibrated threshold of the matching mode), 0 = normal."""
        mode = "given" if c is not None else "marginal"
        return (self.decision_function(X, c) > self.thresholds_[mode]).astype(np.int64)

    @property
    def threshold_(self) -> float:
        """The threshold used when no conditions are passed (marginal mode)."""
        self._fitted()
        return self.thresholds_["marginal"]

    def _fitted(self) -> VAE:
        if self.model_ is None:
            raise NotFittedError("this AnomalyDetector is not fitted yet: call fit() or load()")
        return self.model_

    def _check_like_training(self, X: Any) -> np.ndarray:
        model = self._fitted()
        x = check_inputs(X)
        shape = tuple(model.config.input_shape)
        if x.shape[1:] != shape:
            raise ValueError(f"X has sample shape {x.shape[1:]}, but the model was trained on {shape}")
        if model.config.likelihood == "bernoulli" and not in_unit_interval(x):
            raise ValueError("X has values outside [0, 1]; the model was trained on data in [0, 1]")
        return x

    # ------------------------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the detector as a model directory (config.json + model.safetensors)."""
        model = self._fitted()
        detector = {"score": self.score, "contamination": self.contamination,
                    "validation_fraction": self.validation_fraction,
                    "thresholds": dict(self.thresholds_),
                    "score_fits": {mode: fit.to_dict() for mode, fit in self.score_fits_.items()}}
        return save_model(model, path, training=self.train_config, history=self.history_,
                          detector=detector)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, progress: bool = False) -> AnomalyDetector:
        """Read a directory written by ``save``; refuses files that do not match (never unpickles)."""
        saved = load_model(path)
        info = saved.detector or {}
        expected = {"score", "contamination", "validation_fraction", "thresholds"}
        # score_fits came later: a file without it holds a plain score, which needs no statistics
        if not expected <= set(info) <= expected | {"score_fits"}:
            raise ModelFileError(f"{path}: config.json field 'detector' must hold exactly "
                                 f"{sorted(expected | {'score_fits'})}; was this model saved by "
                                 "AnomalyDetector.save?")
        thresholds = info["thresholds"]
        if (not isinstance(thresholds, dict) or set(thresholds) != set(_MODES)
                or not all(_is_finite_number(v) for v in thresholds.values())):
            raise ModelFileError(f"{path}: config.json field 'detector.thresholds' must map "
                                 f"{list(_MODES)} to finite numbers")
        for key in ("contamination", "validation_fraction"):
            if not _is_finite_number(info[key]):
                raise ModelFileError(f"{path}: config.json field 'detector.{key}' must be a number, "
                                     f"got {info[key]!r}")
        if not isinstance(info["score"], str):
            raise ModelFileError(f"{path}: config.json field 'detector.score' must be a string")
        model = saved.model
        cfg = model.config
        extra = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                 if f.name not in _FROM_DATA}
        train = saved.training or TrainConfig()
        try:
            det = cls(model.name, likelihood=cfg.likelihood, progress=progress,
                      contamination=info["contamination"],
                      validation_fraction=info["validation_fraction"],
                      score=info["score"], **train.to_dict(), **extra)
        except ValueError as err:  # a value out of range, e.g. contamination 0.7
            raise ModelFileError(f"{path}: config.json field 'detector': {err}") from None
        fits = info.get("score_fits", {mode: {} for mode in _MODES})
        if not isinstance(fits, dict) or set(fits) != set(_MODES):
            raise ModelFileError(f"{path}: config.json field 'detector.score_fits' must map "
                                 f"{list(_MODES)} to score statistics")
        try:
            det.score_fits_ = {mode: FittedScore.from_dict(det.recipe, fits[mode]) for mode in _MODES}
        except ValueError as err:
            raise ModelFileError(f"{path}: config.json field 'detector.score_fits': {err}") from None
        det.model_, det.history_ = model, saved.history
        det.thresholds_ = {k: float(v) for k, v in thresholds.items()}
        return det

    def __repr__(self) -> str:
        state = "fitted" if self.model_ is not None else "not fitted"
        return f"AnomalyDetector(model={self.model_name!r}, score={self.score!r}, {state})"


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    """Scores pass only when finite: a NaN score would silently flag nothing as anomalous."""
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}[{i}] has a non-finite anomaly score ({scores[i]}; {int(bad.sum())} such "
                         "samples): the input is too extreme for the model's float32 arithmetic, or the "
                         "model's weights are broken")
    return scores


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_indices(c: Any, n: int, k: int) -> np.ndarray:
    idx = np.asarray(c)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"c must be {n} integer condition indices, got shape {idx.shape} {idx.dtype}")
    if idx.min() < 0 or idx.max() >= k:
        raise ValueError(f"c holds condition indices outside 0..{k - 1}")
    return idx.astype(np.int64)


def _standardise(model: VAE, x: np.ndarray) -> None:
    """Gaussian likelihood: feed the model standardised features (statistics of the fit part)."""
    data = torch.from_numpy(x).float()
    if x.dtype == np.uint8:
        data = data / 255.0  # as VAE.prepare does before standardising
    shift = data.mean(dim=0)
    scale = data.std(dim=0, unbiased=False)
    scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
    model.input_shift.copy_(shift)
    model.input_scale.copy_(scale)
