"""``AnomalyDetector``: a scikit-learn estimator with PyOD's outlier-detector contract.

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from dcvae.classical import ClassicalConfig, ClassicalModel
from dcvae.config import ConfigError
from dcvae.data.canonical import canonical_inputs
from dcvae.data.conditions import (
    check_condition_indices,
    condition_indices,
    condition_names_of,
    encode_conditions,
)
from dcvae.data.split import stratified_split
from dcvae.detector.config import (
    ARCHITECTURE,
    FROM_DATA,
    MODES,
    TRAINING,
    DetectorConfig,
    Plan,
    default_settings,
)
from dcvae.detector.files import load_detector, save_detector
from dcvae.detector.probability import anomaly_probability, prediction_confidence
from dcvae.models import DEFAULT_MODEL, LIKELIHOODS, VAE, VAEConfig, likelihood_for, model_class
from dcvae.models.generation import check_count
from dcvae.models.generation import sample as sample_model
from dcvae.scoring.family import BASE_SCORES, CORRECTED, default_score, offered_scores, parse_score
from dcvae.scoring.family import base_scores as model_base_scores
from dcvae.scoring.latent import LatentCodes, fit_latent_gaussians, training_codes
from dcvae.scoring.scores import GIVEN, MARGINAL, explain
from dcvae.scoring.threshold import CalibratedScore, calibrate, finite_scores
from dcvae.training import (
    COLLAPSE_KL_PER_DIMENSION,
    History,
    PosteriorCollapseWarning,
    TensorData,
    TrainConfig,
    Trainer,
)

#: The checks of ``sklearn.utils.estimator_checks.check_estimator`` this detector fails on purpose,
#: with the reason (pass as ``expected_failed_checks``); every other check passes.
EXPECTED_FAILED_CHECKS = {
    "check_outliers_fit_predict": "predict and fit_predict return 1 for an anomaly and 0 for a normal "
                                  "sample, as PyOD's detectors do, not scikit-learn's -1 / 1",
    "check_outliers_train": "the same 0/1 labels; and decision_function is PyOD's (higher = more "
                            "anomalous), not scikit-learn's score_samples minus an offset",
}




def expected_failed_checks(estimator: AnomalyDetector) -> dict[str, str]:
    """``EXPECTED_FAILED_CHECKS``, and the batch invariance that ``ecod`` gives up by its PyOD
    definition (the scored batch joins the training data in the empirical distributions) and that a
    VAE holds only to float32 rounding; pass as
    ``check_estimator(..., expected_failed_checks=expected_failed_checks(det))``."""
    out = dict(EXPECTED_FAILED_CHECKS)
    if estimator.model == "ecod":
        out["check_methods_subset_invariance"] = ("ECOD scores a batch together with the training data, "
                                                  "so a sample's score depends on the batch (PyOD's ECOD)")
    elif not issubclass(model_class(estimator.model), ClassicalModel):
        # scikit-learn's check asks for 1e-7; the CPU's float32 matrix kernels depend on the batch
        # size, so on some CPUs (Intel with AVX-512, measured) a row's score moves in its last bits
        out["check_methods_subset_invariance"] = ("a VAE scores in float32, and on some CPUs a row's score "
                                                  "differs in its last bits with the size of the batch "
                                                  "(within 1e-5 relative: test_conventions.py)")
    return out


class NotFittedError(_SklearnNotFittedError):
    """The detector was used before ``fit`` (or ``load``)."""


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Train a (conditional) VAE on normal data; score new data; flag what is anomalous.

    Parameters
    ----------
    model: a registered model name: a VAE (vae, beta-vae, cvae, dcvae, dcvae-prior, factorvae,
        rfvae, beta-tcvae) or a classical detector (knn, pca, pca-gauss, iforest, ecod; they ignore
        the architecture, likelihood and training arguments but ``seed``). Default
        ``dcvae.models.DEFAULT_MODEL`` (dcvae-prior); ``"dcvae"`` is the SPEC's dCVAE.
    params: the model's own hyper-parameters, e.g. ``{"beta": 3.0, "gamma": 1.0}`` (see the model's
        config class; ``dcvae list``). In a grid search, ``params__beta`` sets one of them.
    latent_dim, backbone, hidden_dims: the architecture (``VAEConfig``). backbone: "mlp", "conv",
        "auto" (conv for images, mlp for feature vectors) or None, the default: the model's own
        ("auto" for dcvae-prior, "mlp" for the other VAEs).
    likelihood, contamination, validation_fraction, anomaly_score: see ``DetectorConfig`` (the
        score is named ``anomaly_score`` because scikit-learn reserves ``score`` for a method;
        None, the default, is the model's own default score).
    epochs, batch_size, lr, secondary_lr, seed, patience, device, precision ("fp32" | "bf16"):
        see ``TrainConfig``; the precision applies to training and scoring alike.
    progress: show a progress bar while training.

    Attributes (after ``fit``)
    --------------------------
    model_, history_: the trained model and its per-epoch losses.
    anomaly_score_: the score the detector uses (``anomaly_score``, or the model's default).
    thresholds_: the calibrated threshold of each mode ("given", "marginal"); ``threshold_`` is the
        marginal one (the mode without conditions).
    validation_scores_: each mode's scores of the normal validation carve.
    validation_base_scores_: each mode's base scores (recon, elbo, kl, prior) of that carve.
    decision_scores_, labels_: PyOD's scores and 0/1 labels of the training data (given mode when
        ``fit`` had conditions); not set with ``fit(..., training_scores=False)``.
    n_features_in_: the number of features (pixels × channels for images).
    input_: how ``fit`` read its samples: ``{"pixels": bool}``, whether as uint8 intensities
        (0-255); new feature vectors are read the same way, whatever integer type holds them.
        ``dcvae fit`` adds how it read its file (``condition_column``, ``no_conditions``), which
        ``dcvae score`` reads new files by.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, params: dict[str, Any] | None = None,
                 latent_dim: int = VAEConfig.latent_dim, backbone: str | None = None,
                 hidden_dims: tuple[int, ...] = VAEConfig.hidden_dims,
                 likelihood: str = DetectorConfig.likelihood,
                 epochs: int = TrainConfig.epochs, batch_size: int = TrainConfig.batch_size,
                 lr: float = TrainConfig.lr, secondary_lr: float = TrainConfig.secondary_lr,
                 patience: int = TrainConfig.patience, seed: int = TrainConfig.seed,
                 device: str = TrainConfig.device, precision: str = TrainConfig.precision,
                 contamination: float = DetectorConfig.contamination,
                 validation_fraction: float = DetectorConfig.validation_fraction,
                 anomaly_score: str | None = DetectorConfig.anomaly_score, progress: bool = True) -> None:
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
        self.anomaly_score = anomaly_score
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

    def check_settings(self) -> Plan:
        """Check every argument, as ``fit`` does before any training: a ConfigError (a ValueError)
        names the first bad one. Grid files and the CLI call it to fail before spending time."""
        cls = model_class(self.model)
        params = self.params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"params must be a dict of {self.model}'s hyper-parameters, got "
                              f"{type(params).__name__} {params!r}")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        misplaced = sorted(set(params) & (set(ARCHITECTURE) | set(FROM_DATA)))
        if misplaced:
            raise ConfigError(f"{misplaced} are arguments of the detector itself (or read from the "
                              "data), not entries of params")
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigError(f"unknown hyper-parameter(s) {unknown} for model {self.model!r}; it takes "
                              f"{sorted(fields - set(ARCHITECTURE) - set(FROM_DATA))}")
        # the architecture arguments apply to the models that have one (the VAEs)
        architecture = {"latent_dim": self.latent_dim, "hidden_dims": _as_list(self.hidden_dims)}
        if self.backbone is not None:  # None: the model's config default
            architecture["backbone"] = self.backbone
        model_params = {**{k: v for k, v in architecture.items() if k in fields}, **params}
        cls.config_class.from_dict(model_params, where=self.model)  # types and ranges
        training = TrainConfig.from_dict({name: getattr(self, name) for name in TRAINING},
                                         where="training")
        detector = DetectorConfig.from_dict(
            {"contamination": self.contamination, "validation_fraction": self.validation_fraction,
             "anomaly_score": self.anomaly_score, "likelihood": self.likelihood}, where="detector")
        offered = offered_scores(cls)
        recipe = parse_score(detector.anomaly_score or default_score(cls))
        missing = [b for b in recipe.bases if b not in offered]
        if missing:
            raise ConfigError(f"score {recipe.name!r} needs {missing}, which model {self.model!r} does not "
                              f"offer; its scores: {list(offered)}")
        return Plan(cls, model_params, training, detector, recipe)

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
        names: tuple[str, ...]
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
            n_fit = math.floor(len(x) * (1.0 - plan.detector.validation_fraction))  # as scikit-learn rounds
            if not 1 <= n_fit <= len(x) - 1:
                raise ValueError(f"validation_fraction {plan.detector.validation_fraction} of {len(x)} "
                                 f"samples leaves {n_fit} to train on and {len(x) - n_fit} to validate; "
                                 "each needs at least one")
            fit_idx, val_idx = stratified_split(cond, train_size=1.0 - plan.detector.validation_fraction,
                                                seed=plan.training.seed)
            x_fit, c_fit, x_val, c_val = x[fit_idx], cond[fit_idx], x[val_idx], cond[val_idx]
        else:
            x_fit, c_fit = x, cond
            x_val = canonical_inputs(validation[0], name="validation X",
                                     pixels=x.dtype == np.uint8 if x.ndim == 2 else None)
            if x_val.shape[1:] != x.shape[1:]:
                raise ValueError(f"validation X has sample shape {x_val.shape[1:]}, X has {x.shape[1:]}")
            if validation[1] is None:
                if names:  # condition 0 for every validation sample would calibrate a wrong threshold
                    raise ValueError(f"validation has no conditions, but X was given {len(names)} "
                                     "conditions: pass validation=(X_val, c_val) with one per sample")
                c_val = np.zeros(len(x_val), dtype=np.int64)
            elif condition_names is not None:
                c_val = check_condition_indices(validation[1], len(x_val), len(names), name="validation c")
            else:
                c_val = condition_indices(validation[1], len(x_val), names, name="validation c")
        if plan.recipe.needs_fit and len(x_val) < 2:  # checked now: after training it would cost the fit
            raise ValueError(f"score {plan.recipe.name!r} is standardised on the normal validation "
                             f"carve, which needs at least 2 samples; it holds {len(x_val)}: give fit "
                             "more samples, a larger validation_fraction or validation=(X_val, c_val)")
        model, history = _train(plan, x, names, (x_fit, c_fit), (x_val, c_val), progress=self.progress,
                                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
        carve = _calibrate(model, plan, x_val, c_val)  # raises on non-finite validation scores
        # every fitted attribute is set here, together, once training and calibration succeeded
        for name in ("decision_scores_", "labels_"):  # a refit without them must not keep old ones
            self.__dict__.pop(name, None)
        self.model_, self.history_ = model, history
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        self.input_ = {"pixels": bool(x.dtype == np.uint8)}
        self.validation_base_scores_ = carve.base_scores
        self.score_fits_ = {mode: cal.fitted for mode, cal in carve.calibrated.items()}
        self.validation_scores_ = {mode: cal.normal_scores for mode, cal in carve.calibrated.items()}
        self.thresholds_ = {mode: cal.threshold for mode, cal in carve.calibrated.items()}
        self.threshold_ = self.thresholds_[MARGINAL]
        self.anomaly_score_ = plan.recipe.name
        if training_scores:
            given = cond if c is not None and model.conditional else None
            self.decision_scores_ = self._scores(x, given, _mode_key(given))
            self.labels_ = (self.decision_scores_ > self.thresholds_[_mode_key(given)]).astype(np.int64)
        return self

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
        wanted = parse_score(self.anomaly_score_).bases if bases is None else bases
        unknown = sorted(set(wanted) - set(BASE_SCORES))
        if unknown:
            raise ValueError(f"unknown base score(s) {unknown}; choose from {list(BASE_SCORES)}")
        return model_base_scores(self._fitted(), x, indices, wanted, precision=self.precision,
                                 batch_size=max(self.batch_size, 1024))

    def _scores(self, x: np.ndarray, indices: np.ndarray | None, mode: str) -> np.ndarray:
        return finite_scores(self.score_fits_[mode](self._base_scores(x, indices)), "X")

    def anomaly_map(self, X: Any, c: Any = None) -> np.ndarray:
        """Where each sample is odd: the squared reconstruction error per pixel (per feature), float32
        shaped like the canonical input ``(n, C, H, W)`` or ``(n, d)``. Its reduction is the ``recon``
        score (Eq. 17): ``sqrt(map.sum())`` of a sample equals its ``recon`` base score. In marginal
        mode the map is the one of the condition that gives the sample its ``recon`` score (the one
        with the smallest reconstruction error); in given mode, of ``c``."""
        model = self._fitted()
        if not isinstance(model, VAE):
            raise ValueError(f"{model.name} is a classical detector: it reconstructs nothing, so it has "
                             "no anomaly map; use a VAE")
        x, indices = self._inputs(X, c)
        seen = explain(model, x, indices, score="recon", batch_size=max(self.batch_size, 1024),
                       precision=self.precision)
        pixels = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        scale = model.input_scale.detach().cpu().numpy()  # the error is measured in the model's space
        return np.square((pixels - seen.reconstruction) / scale).astype(np.float32)

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
        """(n, 2) probabilities of [normal, anomaly], PyOD's two ways ("linear", "unify"; see
        ``dcvae.detector.probability``) on the scale of the normal validation carve."""
        scores = self.decision_function(X, c)
        anomalous = anomaly_probability(scores, self._validation_scores(c), method)
        proba = np.column_stack([1.0 - anomalous, anomalous])
        if return_confidence:
            return proba, self._confidence(scores, c)
        return proba

    def predict_confidence(self, X: Any, c: Any = None) -> np.ndarray:
        """How sure the 0/1 prediction is, in [0, 1]: ExCeeD (Perini et al. 2020), as PyOD has it,
        with the normal validation carve as the reference sample."""
        return self._confidence(self.decision_function(X, c), c)

    def _validation_scores(self, c: Any) -> np.ndarray:
        self._fitted()
        if "validation_scores_" not in self.__dict__:
            raise NotFittedError("this model was saved by dcvae 0.1, which kept no scores of the validation "
                                 "carve; predict_proba and predict_confidence need them: fit it again")
        return self.validation_scores_[_mode_key(c)]

    def _confidence(self, scores: np.ndarray, c: Any) -> np.ndarray:
        flagged = scores > self.thresholds_[_mode_key(c)]
        return prediction_confidence(scores, self._validation_scores(c), self.contamination, flagged)

    # ------------------------------------------------------------------------------ generate
    def sample(self, n: int, c: Any = None, *, seed: int = 0) -> np.ndarray:
        """``n`` samples of the trained VAE (the decoder's mean at z ~ p(z|c)), float32 in data
        units (images in [0, 1]); ``c``: one condition name for all, one per sample, or None
        (conditions drawn uniformly). See ``dcvae.models.generation``."""
        model = self._fitted()
        if not isinstance(model, VAE):
            raise ValueError(f"{model.name} is a classical detector: it has no generative model to "
                             "sample from")
        n = check_count(n)
        index = None
        if c is not None and model.conditional:
            names = model.config.condition_names or ("0",)
            index = condition_indices(np.broadcast_to(np.asarray(c, dtype=object), (n,)) if np.ndim(c) == 0
                                      else c, n, names)
        elif c is not None:
            raise ValueError(f"{model.name} is unconditional: sample takes no condition")
        return sample_model(model, n, index, seed=seed)

    # ------------------------------------------------------------------------------ checks
    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.three_d_array = True  # (n, H, W) images
        return tags

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample the fitted model takes, ``(C, H, W)`` or ``(d,)`` (as
        ``OnnxDetector.input_shape``)."""
        return tuple(int(s) for s in self._fitted().config.input_shape)

    def _fitted(self) -> VAE | ClassicalModel:
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
        pixels = self.__dict__.get("input_", {}).get("pixels")  # None: a file saved without it
        if x.ndim == 2 and pixels is not None:  # feature vectors are read as fit read them
            x = canonical_inputs(X, pixels=pixels)
        model.check_inputs(x)
        return x

    # ------------------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the detector as a model directory (config.json, the weights and the fitted
        arrays), as one unit: a save that fails keeps the previous model."""
        return save_detector(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, progress: bool = False,
             device: str | None = None) -> AnomalyDetector:
        """Read a directory written by ``save``; refuses files that do not match (never unpickles).
        ``device`` puts the model there to score (default: the CPU, wherever it was trained)."""
        return load_detector(cls, path, progress=progress, device=device)


@dataclass(frozen=True)
class _Validation:
    base_scores: dict[str, dict[str, np.ndarray]]  # mode -> base score -> (n_val,)
    calibrated: dict[str, CalibratedScore]  # mode -> the detector's score fitted and thresholded


def _train(plan: Plan, x: np.ndarray, names: tuple[str, ...], fit: tuple[np.ndarray, np.ndarray],
           validation: tuple[np.ndarray, np.ndarray], *, progress: bool, checkpoint: Any,
           checkpoint_every: int, resume: bool) -> tuple[VAE | ClassicalModel, History]:
    """Build the model for the data and train it: a VAE by the trainer (seeded initialisation,
    standardised inputs for a Gaussian likelihood, early stopping on the validation carve), a
    classical detector by its own fit on the training part. The one place the two kinds differ."""
    likelihood = plan.detector.likelihood
    if likelihood == "auto":
        likelihood = likelihood_for(x)
    config = plan.model_class.config_for_data(plan.model_params, input_shape=x.shape[1:],
                                              condition_names=names, likelihood=likelihood,
                                              seed=plan.training.seed)
    if issubclass(plan.model_class, ClassicalModel):
        if checkpoint is not None or resume:
            raise ValueError(f"{plan.model_class.name} is not trained in epochs: it takes no checkpoint")
        return plan.model_class(cast(ClassicalConfig, config)).fit(*fit), History()
    config = cast(VAEConfig, config)  # a VAE class's config_for_data gives its VAEConfig
    LIKELIHOODS[likelihood].check_inputs(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.training.seed)
        model = plan.model_class(config)
    if model.likelihood.standardises_inputs:
        model.fit_input_standardisation(torch.from_numpy(fit[0]))
    trainer = Trainer(model, plan.training, progress=progress)
    history = trainer.fit(TensorData.from_numpy(*fit), TensorData.from_numpy(*validation),
                          checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    kl = history.kl_per_dimension(config.latent_dim)
    if kl is not None and kl < COLLAPSE_KL_PER_DIMENSION:
        warnings.warn(f"posterior collapse: the KL term is {kl:.3g} nats per latent dimension at the end "
                      f"of training (below {COLLAPSE_KL_PER_DIMENSION}), so the latent is barely used and "
                      "the model scores like a plain decoder; train longer (epochs), lower beta, or "
                      "compare with a classical detector (knn, pca)", PosteriorCollapseWarning, stacklevel=3)
    model = model.cpu() if plan.training.device == "cpu" else model
    codes = training_codes(model, *fit, precision=plan.training.precision,
                           batch_size=max(plan.training.batch_size, 1024))
    model.latent_gaussians = fit_latent_gaussians(model, *fit, codes=codes)
    model.latent_codes = LatentCodes.of(*codes, max(model.n_conditions, 1), seed=plan.training.seed)
    return model, history


def _calibrate(model: VAE | ClassicalModel, plan: Plan, x_val: np.ndarray, c_val: np.ndarray
               ) -> _Validation:
    """One pass over the normal validation carve gives both modes: under every condition, the
    marginal score is the minimum and the given score the sample's own column."""
    offered = offered_scores(model)
    own = tuple(b for b in offered if b not in CORRECTED)  # the corrected ones cost a pass of their own
    bases = tuple(dict.fromkeys((*sorted(own), *plan.recipe.bases)))
    table = model_base_scores(model, x_val, None, bases, precision=plan.training.precision,
                              batch_size=max(plan.training.batch_size, 1024), per_condition=True)
    rows = np.arange(len(x_val))
    columns = c_val if model.conditional and table[bases[0]].shape[1] > 1 else np.zeros_like(c_val)
    base = {GIVEN: {b: v[rows, columns] for b, v in table.items()},
            MARGINAL: {b: v.min(axis=1) for b, v in table.items()}}
    calibrated = {mode: calibrate(plan.recipe, base[mode], plan.detector.contamination)
                  for mode in MODES}
    return _Validation(base, calibrated)


def _mode_key(c: Any) -> str:
    """The threshold (and score statistics) a call uses: given mode when conditions are passed."""
    return GIVEN if c is not None else MARGINAL


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
