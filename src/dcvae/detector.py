"""The detector: a scikit-learn estimator with PyOD's outlier-detector contract, on top of the core.

>>> from dcvae import AnomalyDetector
>>> from dcvae.data import load_dataset
>>> digits = load_dataset("digits")
>>> det = AnomalyDetector("dcvae", epochs=2, progress=False).fit(digits.train.x, c=digits.train.y)
>>> det.decision_function(digits.test.x[:3]).shape
(3,)

Conventions, and where they come from:

- scikit-learn: ``__init__`` only stores its arguments; ``fit`` checks them, trains and sets the
  trailing-underscore attributes; ``get_params``/``set_params``/``clone``, ``Pipeline`` and
  ``GridSearchCV`` work. ``fit(X, y)`` ignores ``y``, as unsupervised estimators do: conditions
  are passed as ``c=``. ``score_samples`` has scikit-learn's sign (higher = more normal).
- PyOD: ``decision_function`` is higher = more anomalous; ``predict`` returns 1 for an anomaly and
  0 for a normal sample; ``decision_scores_``, ``labels_``, ``threshold_``, ``predict_proba``
  ("linear" and "unify"), ``predict_confidence`` and ``fit_predict`` are PyOD's. One difference:
  the threshold and the probability scales come from the normal validation carve held out of
  training, not from the training data the model has fitted.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import erf
from scipy.stats import binom
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from dcvae.config import ConfigError, StrictConfig
from dcvae.data.canonical import canonical_inputs
from dcvae.data.conditions import (
    check_condition_indices,
    condition_indices,
    condition_names_of,
    encode_conditions,
)
from dcvae.data.split import stratified_split
from dcvae.io.model_dir import ModelFileError, load_model, save_model
from dcvae.models import LIKELIHOODS, VAE, VAEConfig, likelihood_for, model_class
from dcvae.scoring.family import BASE_SCORES, DEFAULT_SCORE, FittedScore, ScoreRecipe, parse_score
from dcvae.scoring.family import base_scores as model_base_scores
from dcvae.scoring.scores import GIVEN, MARGINAL, SCORES, condition_mode
from dcvae.scoring.threshold import calibrate, check_contamination, finite_scores
from dcvae.training import History, TensorData, TrainConfig, Trainer

MODES = (GIVEN, MARGINAL)
#: Model settings read from the data in ``fit``, never passed by the user.
_FROM_DATA = ("input_shape", "condition_names", "likelihood")
#: Model settings that are the detector's own arguments rather than entries of ``params``.
_ARCHITECTURE = ("latent_dim", "backbone", "hidden_dims")
_TRAINING = tuple(f.name for f in dataclasses.fields(TrainConfig))
_PROBA_METHODS = ("linear", "unify")


@dataclass(frozen=True)
class DetectorConfig(StrictConfig):
    """How the detector turns a trained model into decisions.

    contamination: expected anomaly fraction in [0, 0.5]; sets the threshold on the validation
        carve of the normal data (0 = the largest validation score).
    validation_fraction: share of the training data held out for early stopping and the threshold.
    score: a score name of ``dcvae.scoring.family`` (``"recon"``, ``"typical-elbo"``, ...).
    likelihood: "auto" (Bernoulli for data in [0, 1], Gaussian on standardised features else),
        "bernoulli" or "gaussian".
    """

    contamination: float = 0.05
    validation_fraction: float = 0.1
    score: str = DEFAULT_SCORE
    likelihood: str = "auto"

    def __post_init__(self) -> None:
        try:
            check_contamination(self.contamination)
            parse_score(self.score)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.likelihood not in ("auto", *LIKELIHOODS):
            raise ConfigError(f"likelihood must be 'auto' or one of {sorted(LIKELIHOODS)}, got "
                              f"{self.likelihood!r}")


def default_settings() -> dict[str, Any]:
    """Every detector setting and its default, read from the config dataclasses that own it."""
    out: dict[str, Any] = {}
    for cls, names in ((VAEConfig, _ARCHITECTURE), (TrainConfig, _TRAINING),
                       (DetectorConfig, tuple(f.name for f in dataclasses.fields(DetectorConfig)))):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        out.update({name: defaults[name] for name in names})
    return out


class NotFittedError(_SklearnNotFittedError):
    """The detector was used before ``fit`` (or ``load``)."""


@dataclass(frozen=True)
class _Plan:
    """The detector's arguments, checked: what ``fit`` builds and trains."""

    model_class: type[VAE]
    model_params: dict[str, Any]
    training: TrainConfig
    detector: DetectorConfig
    recipe: ScoreRecipe


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Train a (conditional) VAE on normal data; score new data; flag what is anomalous.

    Parameters
    ----------
    model: a registered model name: vae, beta-vae, cvae, dcvae, factorvae, rfvae, beta-tcvae.
    params: the model's own hyper-parameters, e.g. ``{"beta": 3.0, "gamma": 1.0}`` (see the model's
        config class; ``dcvae list``). In a grid search, ``params__beta`` sets one of them.
    latent_dim, backbone ("mlp" | "conv"), hidden_dims: the architecture (``VAEConfig``).
    likelihood, contamination, validation_fraction, score: see ``DetectorConfig``.
    epochs, batch_size, lr, secondary_lr, seed, patience, device, precision ("fp32" | "bf16"):
        see ``TrainConfig``; the precision applies to training and scoring alike.
    progress: show a progress bar while training.

    Attributes (after ``fit``)
    --------------------------
    model_, history_: the trained model and its per-epoch losses.
    thresholds_: the calibrated threshold of each mode ("given", "marginal"); ``threshold_`` is the
        marginal one (the mode without conditions).
    validation_scores_: each mode's scores of the normal validation carve.
    validation_base_scores_: each mode's base scores (recon, elbo, kl, prior) of that carve.
    decision_scores_, labels_: PyOD's scores and 0/1 labels of the training data (given mode when
        ``fit`` had conditions); not set with ``fit(..., training_scores=False)``.
    n_features_in_: the number of features (pixels × channels for images).
    """

    def __init__(self, model: str = "dcvae", *, params: dict[str, Any] | None = None,
                 latent_dim: int = VAEConfig.latent_dim, backbone: str = VAEConfig.backbone,
                 hidden_dims: tuple[int, ...] = VAEConfig.hidden_dims,
                 likelihood: str = DetectorConfig.likelihood,
                 epochs: int = TrainConfig.epochs, batch_size: int = TrainConfig.batch_size,
                 lr: float = TrainConfig.lr, secondary_lr: float = TrainConfig.secondary_lr,
                 patience: int = TrainConfig.patience, seed: int = TrainConfig.seed,
                 device: str = TrainConfig.device, precision: str = TrainConfig.precision,
                 contamination: float = DetectorConfig.contamination,
                 validation_fraction: float = DetectorConfig.validation_fraction,
                 score: str = DetectorConfig.score, progress: bool = True) -> None:
        self.model = model
        self.params = params
        self.latent_dim = latent_dim
        self.backbone = backbone
        self.hidden_dims = hidden_dims
        self.likelihood = likelihood
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.secondary_lr = secondary_lr
        self.patience = patience
        self.seed = seed
        self.device = device
        self.precision = precision
        self.contamination = contamination
        self.validation_fraction = validation_fraction
        self.score = score
        self.progress = progress

    # ------------------------------------------------------------------------------ settings
    @classmethod
    def from_settings(cls, model: str, settings: dict[str, Any], **overrides: Any) -> AnomalyDetector:
        """A detector from flat settings, as grid files and the CLI write them: the detector's own
        arguments by name, everything else a model hyper-parameter (``{"epochs": 10, "beta": 3}``)."""
        own = set(default_settings()) | {"progress"}
        merged = {**settings, **overrides}
        params = {k: v for k, v in merged.items() if k not in own and k != "params"}
        kwargs = {k: v for k, v in merged.items() if k in own}
        return cls(model, params={**(merged.get("params") or {}), **params} or None, **kwargs)

    def set_params(self, **params: Any) -> AnomalyDetector:
        """scikit-learn's ``set_params``; ``params__NAME=value`` sets one model hyper-parameter."""
        nested = {k[len("params__"):]: params.pop(k) for k in list(params) if k.startswith("params__")}
        super().set_params(**params)
        if nested:
            self.params = {**(self.params or {}), **nested}
        return self

    def check_settings(self) -> _Plan:
        """Check every argument, as ``fit`` does before any training: a ConfigError (a ValueError)
        names the first bad one. Grid files and the CLI call it to fail before spending time."""
        cls = model_class(self.model)
        params = self.params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"params must be a dict of {self.model}'s hyper-parameters, got "
                              f"{type(params).__name__} {params!r}")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        misplaced = sorted(set(params) & (set(_ARCHITECTURE) | set(_FROM_DATA)))
        if misplaced:
            raise ConfigError(f"{misplaced} are arguments of the detector itself (or read from the "
                              "data), not entries of params")
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigError(f"unknown hyper-parameter(s) {unknown} for model {self.model!r}; it takes "
                              f"{sorted(fields - set(_ARCHITECTURE) - set(_FROM_DATA))}")
        model_params = {"latent_dim": self.latent_dim, "backbone": self.backbone,
                        "hidden_dims": _as_list(self.hidden_dims), **params}
        cls.config_class.from_dict(model_params, where=self.model)  # types and ranges
        training = TrainConfig.from_dict({name: getattr(self, name) for name in _TRAINING},
                                         where="training")
        detector = DetectorConfig.from_dict(
            {"contamination": self.contamination, "validation_fraction": self.validation_fraction,
             "score": self.score, "likelihood": self.likelihood}, where="detector")
        return _Plan(cls, model_params, training, detector, parse_score(detector.score))

    # ------------------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None, c: Any = None, *,
            condition_names: tuple[str, ...] | None = None,
            validation: tuple[Any, Any] | None = None,
            checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 1,
            resume: bool = False, training_scores: bool = True) -> AnomalyDetector:
        """Train on normal data ``X`` with optional conditions ``c`` (one per sample); ``y`` is
        ignored (scikit-learn's convention for unsupervised estimators).

        ``condition_names``: when given, ``c`` holds indices into it. ``validation``: an explicit
        (X_val, c_val) of normal data; otherwise a stratified ``validation_fraction`` is carved.
        ``checkpoint``/``checkpoint_every``/``resume``: see ``Trainer.fit``; a resumed fit ends
        with the same weights as an uninterrupted one. ``training_scores=False`` skips scoring
        the training data (``decision_scores_``, ``labels_``), e.g. in a benchmark.
        """
        plan = self.check_settings()
        x = canonical_inputs(X)
        if c is None:
            cond, names = np.zeros(len(x), dtype=np.int64), ()
        elif condition_names is not None:  # c holds indices into the names given
            names = tuple(str(v) for v in condition_names)
            cond = check_condition_indices(c, len(x), len(names))
        else:
            cond, names = encode_conditions(c, len(x))
        if validation is None:
            if len(x) < 2:
                raise ValueError(f"fit needs at least 2 samples, got {len(x)} sample: one to train on, "
                                 "one to validate")
            fit_idx, val_idx = stratified_split(cond, train_size=1.0 - plan.detector.validation_fraction,
                                                seed=plan.training.seed)
            x_fit, c_fit, x_val, c_val = x[fit_idx], cond[fit_idx], x[val_idx], cond[val_idx]
        else:
            x_fit, c_fit = x, cond
            x_val = canonical_inputs(validation[0], name="validation X")
            if x_val.shape[1:] != x.shape[1:]:
                raise ValueError(f"validation X has sample shape {x_val.shape[1:]}, X has {x.shape[1:]}")
            if validation[1] is None:
                c_val = np.zeros(len(x_val), dtype=np.int64)
            elif condition_names is not None:
                c_val = check_condition_indices(validation[1], len(x_val), len(names), name="validation c")
            else:
                c_val = condition_indices(validation[1], len(x_val), names, name="validation c")
        likelihood = plan.detector.likelihood
        if likelihood == "auto":
            likelihood = likelihood_for(x)
        LIKELIHOODS[likelihood].check_inputs(x)
        config = plan.model_class.config_class.from_dict(
            {**plan.model_params, "input_shape": list(x.shape[1:]), "likelihood": likelihood,
             "condition_names": list(names)}, where=self.model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(plan.training.seed)
            model = plan.model_class(config)
        if model.likelihood.standardises_inputs:
            model.fit_input_standardisation(torch.from_numpy(x_fit))
        trainer = Trainer(model, plan.training, progress=self.progress)
        history = trainer.fit(TensorData.from_numpy(x_fit, c_fit), TensorData.from_numpy(x_val, c_val),
                              checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
        self.model_ = model.cpu() if plan.training.device == "cpu" else model
        self.history_ = history
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        self._calibrate(plan, x_val, c_val)
        for name in ("decision_scores_", "labels_"):  # a refit without them must not keep old ones
            self.__dict__.pop(name, None)
        if training_scores:
            given = cond if c is not None and model.conditional else None
            self.decision_scores_ = self._scores(x, given, _mode_key(given))
            self.labels_ = (self.decision_scores_ > self.thresholds_[_mode_key(given)]).astype(np.int64)
        return self

    def _calibrate(self, plan: _Plan, x_val: np.ndarray, c_val: np.ndarray) -> None:
        """One pass over the normal validation carve gives both modes: under every condition,
        the marginal score is the minimum and the given score the sample's own column."""
        model = self.model_
        bases = tuple(dict.fromkeys((*sorted(SCORES), *plan.recipe.bases)))
        table = model_base_scores(model, x_val, None, bases, precision=plan.training.precision,
                            batch_size=max(plan.training.batch_size, 1024), per_condition=True)
        rows = np.arange(len(x_val))
        own = c_val if model.conditional and table[bases[0]].shape[1] > 1 else np.zeros_like(c_val)
        self.validation_base_scores_ = {
            GIVEN: {b: v[rows, own] for b, v in table.items()},
            MARGINAL: {b: v.min(axis=1) for b, v in table.items()},
        }
        try:
            calibrated = {mode: calibrate(plan.recipe, self.validation_base_scores_[mode],
                                          plan.detector.contamination) for mode in MODES}
        except ValueError:  # non-finite validation scores: no half-fitted detector without thresholds
            del self.model_
            raise
        self.score_fits_ = {mode: cal.fitted for mode, cal in calibrated.items()}
        self.validation_scores_ = {mode: cal.normal_scores for mode, cal in calibrated.items()}
        self.thresholds_ = {mode: cal.threshold for mode, cal in calibrated.items()}
        self.threshold_ = self.thresholds_[MARGINAL]

    # ------------------------------------------------------------------------------ score
    def decision_function(self, X: Any, c: Any = None) -> np.ndarray:
        """Anomaly scores, higher = more anomalous. Conditional models: ``given`` mode with ``c``,
        ``marginal`` mode (minimum over the training conditions) without."""
        x, indices = self._inputs(X, c)
        return self._scores(x, indices, _mode_key(c))

    def base_scores(self, X: Any, c: Any = None, bases: tuple[str, ...] | None = None
                    ) -> dict[str, np.ndarray]:
        """The base scores of ``X`` (default: those of the detector's score), in one model pass."""
        x, indices = self._inputs(X, c)
        return self._base_scores(x, indices, bases)

    def _inputs(self, X: Any, c: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Canonical inputs like the training data's, and condition indices (None: marginal)."""
        model = self._fitted()
        x = self._check_like_training(X)
        if c is not None and model.conditional:
            return x, condition_indices(c, len(x), model.config.condition_names)
        if c is not None:  # the model ignores conditions, but a c that does not fit X is a mistake
            condition_names_of(c, len(x))
        return x, None

    def _base_scores(self, x: np.ndarray, indices: np.ndarray | None,
                     bases: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        wanted = parse_score(self.score).bases if bases is None else bases
        unknown = sorted(set(wanted) - set(BASE_SCORES))
        if unknown:
            raise ValueError(f"unknown base score(s) {unknown}; choose from {list(BASE_SCORES)}")
        return model_base_scores(self._fitted(), x, indices, wanted, precision=self.precision,
                                 batch_size=max(self.batch_size, 1024))

    def _scores(self, x: np.ndarray, indices: np.ndarray | None, mode: str) -> np.ndarray:
        return finite_scores(self.score_fits_[mode](self._base_scores(x, indices)), "X")

    def score_samples(self, X: Any, c: Any = None) -> np.ndarray:
        """scikit-learn's sign: higher = more normal (the negated ``decision_function``)."""
        return -self.decision_function(X, c)

    def predict(self, X: Any, c: Any = None, *, return_confidence: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """1 = anomaly (score above the calibrated threshold of the matching mode), 0 = normal."""
        scores = self.decision_function(X, c)
        labels = (scores > self.thresholds_[_mode_key(c)]).astype(np.int64)
        if return_confidence:
            return labels, self._confidence(scores, c)
        return labels

    def fit_predict(self, X: Any, y: Any = None, c: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then the 0/1 labels of the training data (PyOD's ``labels_``)."""
        return self.fit(X, y, c, **fit_params).labels_

    def predict_proba(self, X: Any, c: Any = None, method: str = "linear",
                      return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(n, 2) probabilities of [normal, anomaly], PyOD's two ways, on the scale of the normal
        validation carve: "linear" min-max scales the scores (clipped to [0, 1]); "unify"
        (Kriegel et al. 2011) is erf((s − mean) / (sd·√2)), clipped to [0, 1]."""
        if method not in _PROBA_METHODS:
            raise ValueError(f"method must be one of {list(_PROBA_METHODS)}, got {method!r}")
        scores = self.decision_function(X, c)
        normal = self._validation_scores(c)
        if method == "linear":
            span = normal.max() - normal.min()
            anomalous = (scores - normal.min()) / (span if span > 0 else 1.0)
        else:
            anomalous = erf((scores - normal.mean()) / (max(normal.std(), 1e-12) * math.sqrt(2.0)))
        anomalous = anomalous.clip(0.0, 1.0)
        proba = np.column_stack([1.0 - anomalous, anomalous])
        if return_confidence:
            return proba, self._confidence(scores, c)
        return proba

    def predict_confidence(self, X: Any, c: Any = None) -> np.ndarray:
        """How sure the 0/1 prediction is, in [0, 1]: ExCeeD (Perini et al. 2020), as PyOD has it,
        with the normal validation carve as the reference sample."""
        return self._confidence(self.decision_function(X, c), c)

    def _validation_scores(self, c: Any) -> np.ndarray:
        if "validation_scores_" not in self.__dict__:
            raise NotFittedError("this model was saved by dcvae 0.1, which kept no scores of the validation "
                                 "carve; predict_proba and predict_confidence need them: fit it again")
        return self.validation_scores_[_mode_key(c)]

    def _confidence(self, scores: np.ndarray, c: Any) -> np.ndarray:
        normal = np.sort(self._validation_scores(c))
        n = len(normal)
        below = np.searchsorted(normal, scores, side="right")  # reference scores <= each score
        posterior = (1.0 + below) / (2.0 + n)
        confidence = 1.0 - binom.cdf(n - int(n * self.contamination), n, posterior)
        flagged = scores > self.thresholds_[_mode_key(c)]
        return np.where(flagged, confidence, 1.0 - confidence)

    # ------------------------------------------------------------------------------ checks
    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.three_d_array = True  # (n, H, W) images
        return tags

    def _fitted(self) -> VAE:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this AnomalyDetector is not fitted yet: call fit() or load()")
        return self.model_

    def _check_like_training(self, X: Any) -> np.ndarray:
        model = self._fitted()
        x = canonical_inputs(X)
        shape = tuple(model.config.input_shape)
        if x.shape[1:] != shape:
            if x.ndim == 2 and len(shape) == 1:
                raise ValueError(f"X has {x.shape[1]} features, but AnomalyDetector is expecting "
                                 f"{shape[0]} features as input (sample shape {x.shape[1:]}, trained "
                                 f"on {shape})")
            raise ValueError(f"X has sample shape {x.shape[1:]}, but the model was trained on {shape}")
        model.likelihood.check_inputs(x)
        return x

    # ------------------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the detector as a model directory (config.json, model.safetensors and the fitted
        arrays in arrays.safetensors)."""
        model = self._fitted()
        detector = {"score": self.score, "contamination": self.contamination,
                    "validation_fraction": self.validation_fraction,
                    "thresholds": dict(self.thresholds_),
                    "score_fits": {mode: fit.to_dict() for mode, fit in self.score_fits_.items()}}
        arrays = {f"validation_scores.{mode}": v for mode, v in self.validation_scores_.items()}
        if "decision_scores_" in self.__dict__:
            arrays.update(decision_scores=self.decision_scores_, labels=self.labels_)
        return save_model(model, path, training=self.check_settings().training, history=self.history_,
                          detector=detector, arrays=arrays)

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
        params = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                  if f.name not in _FROM_DATA and f.name not in _ARCHITECTURE}
        train = saved.training or TrainConfig()
        det = cls(model.name, params=_jsonable(params) or None, latent_dim=cfg.latent_dim,
                  backbone=cfg.backbone, hidden_dims=tuple(cfg.hidden_dims), likelihood=cfg.likelihood,
                  progress=progress, contamination=info["contamination"],
                  validation_fraction=info["validation_fraction"], score=info["score"],
                  **train.to_dict())
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
        det.model_, det.history_ = model, saved.history or History()
        det.thresholds_ = {k: float(v) for k, v in thresholds.items()}
        det.threshold_ = det.thresholds_[MARGINAL]
        det.n_features_in_ = int(np.prod(cfg.input_shape))
        scores = {mode: saved.arrays.get(f"validation_scores.{mode}") for mode in MODES}
        if all(v is not None for v in scores.values()):
            det.validation_scores_ = {mode: np.asarray(v, dtype=np.float64) for mode, v in scores.items()}
        if "decision_scores" in saved.arrays and "labels" in saved.arrays:
            det.decision_scores_ = np.asarray(saved.arrays["decision_scores"], dtype=np.float64)
            det.labels_ = np.asarray(saved.arrays["labels"], dtype=np.int64)
        return det


def _mode_key(c: Any) -> str:
    """The threshold (and score statistics) a call uses: given mode when conditions are passed."""
    return GIVEN if c is not None else MARGINAL


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["MODES", "AnomalyDetector", "DetectorConfig", "NotFittedError", "condition_mode",
           "default_settings"]
