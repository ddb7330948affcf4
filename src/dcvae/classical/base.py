"""Classical detectors under the detector's contract: what a practitioner tries first.

Each wraps a scikit-learn (or PyOD) estimator on flattened features, so that ``AnomalyDetector``
treats it as it treats a VAE: it is fitted on the normal training data, offers its base scores
per condition (the marginal and given modes), and is saved without pickle.

- **Features.** Images become flat vectors in [0, 1] (uint8 / 255); feature vectors outside [0, 1]
  are standardised with the statistics of the training data.
- **Training data.** Above ``max_train`` samples, a seeded subsample stratified by condition is
  kept (``dcvae.data.split``).
- **Saving.** A fitted estimator is a deterministic function of the data it saw, its settings and
  the seed. A saved classical model therefore stores that data (and its conditions) as arrays and
  is fitted again on load, which gives the same scores to the bit; no estimator internals are
  written or read, and nothing is unpickled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar, TypeVar

import numpy as np

from dcvae.config import ConfigError, StrictConfig
from dcvae.data.canonical import in_unit_interval
from dcvae.data.split import stratified_split

C = TypeVar("C", bound="type[ClassicalModel]")
CLASSICAL: dict[str, type[ClassicalModel]] = {}


def register_classical(cls: C) -> C:
    """Class decorator: make a classical detector available under ``cls.name``."""
    if cls.name in CLASSICAL:
        raise ValueError(f"classical model {cls.name!r} registered twice")
    CLASSICAL[cls.name] = cls
    return cls


@dataclass(frozen=True)
class ClassicalConfig(StrictConfig):
    """What every classical detector has.

    input_shape, condition_names: read from the data, as for the VAEs.
    max_train: training samples kept at most (a seeded subsample, stratified by condition).
    seed: fixes the subsample and any randomness of the estimator (the detector's ``seed``).
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    condition_names: tuple[str, ...] = ()
    max_train: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.input_shape) not in (1, 3) or any(s < 1 for s in self.input_shape):
            raise ConfigError(f"input_shape must be (C, H, W) or (d,) with positive sizes, got "
                              f"{self.input_shape}")
        if self.max_train < 2:
            raise ConfigError(f"max_train must be at least 2, got {self.max_train}")
        if len(set(self.condition_names)) != len(self.condition_names):
            raise ConfigError(f"condition_names must be unique, got {self.condition_names}")


class ClassicalModel:
    """A classical detector: fit on normal data, base scores per condition, saved as its data."""

    name: ClassVar[str]
    config_class: ClassVar[type[ClassicalConfig]] = ClassicalConfig
    conditional: ClassVar[bool] = False
    #: The base scores it offers (higher = more anomalous); the first is its default score.
    scores: ClassVar[tuple[str, ...]]

    def __init__(self, config: ClassicalConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.n_conditions = max(1, len(config.condition_names)) if self.conditional else 0
        self.train_x: np.ndarray | None = None
        self.train_c: np.ndarray | None = None
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or cls.name).strip().splitlines()[0]

    @classmethod
    def config_for_data(cls, params: dict[str, Any], *, input_shape: tuple[int, ...],
                        condition_names: tuple[str, ...], likelihood: str, seed: int) -> ClassicalConfig:
        """The config for the data at hand; ``likelihood`` means nothing here and is not kept."""
        return cls.config_class.from_dict({**params, "input_shape": list(input_shape), "seed": seed,
                                           "condition_names": list(condition_names)}, where=cls.name)

    def check_inputs(self, x: np.ndarray, *, name: str = "X") -> None:
        """Every finite canonical input can be scored."""

    # ------------------------------------------------------------------------------ fitting
    def fit(self, x: np.ndarray, c: np.ndarray) -> ClassicalModel:
        """Fit on canonical normal inputs ``x`` with condition indices ``c`` (zeros without)."""
        cfg = self.config
        if x.shape[1:] != tuple(cfg.input_shape):
            raise ValueError(f"X has sample shape {x.shape[1:]}, the model expects {cfg.input_shape}")
        if len(x) > cfg.max_train:
            keep, _ = stratified_split(c, train_size=cfg.max_train, seed=cfg.seed)
            x, c = x[keep], c[keep]
        self._check_memory(len(x))
        self.train_x, self.train_c = np.ascontiguousarray(x), np.asarray(c, dtype=np.int64)
        flat = _flatten(self.train_x)
        if in_unit_interval(flat):
            self.shift = self.scale = None
        else:  # unbounded features: standardised, as the Gaussian likelihood of the VAEs does
            self.shift = flat.mean(axis=0)
            scale = flat.std(axis=0)
            self.scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        self._fit(self.features(self.train_x), self.train_c)
        return self

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        """Fit the estimator on (n, d) float32 features and their condition indices."""
        raise NotImplementedError

    def _check_memory(self, n: int) -> None:
        """Refuse a training set whose float32 features would not fit in the memory available."""
        needed = 4 * n * math.prod(self.config.input_shape)
        available = _available_memory()
        if available is not None and needed > available // 2:
            raise ValueError(
                f"{self.name} would hold {n:,} training samples of {math.prod(self.config.input_shape):,} "
                f"features ({needed / 2**30:.1f} GiB as float32), more than half the "
                f"{available / 2**30:.1f} GiB of memory available: lower max_train (params) to subsample")

    # ------------------------------------------------------------------------------ scoring
    def features(self, x: np.ndarray) -> np.ndarray:
        """Canonical inputs → the (n, d) float32 features the estimator sees."""
        flat = _flatten(x)
        if self.shift is not None and self.scale is not None:
            flat = (flat - self.shift) / self.scale
        return flat

    def score_table(self, x: np.ndarray, c: np.ndarray | None = None, *, scores: tuple[str, ...],
                    per_condition: bool = False, **_: Any) -> dict[str, np.ndarray]:
        """Base scores of canonical inputs ``x``, as ``dcvae.scoring.score_table`` gives a VAE's:
        given mode with condition indices ``c``, else marginal (the minimum over the conditions);
        ``per_condition``: (n, K), one column per condition."""
        unknown = sorted(set(scores) - set(self.scores))
        if unknown:
            raise ValueError(f"{self.name} offers the scores {list(self.scores)}, not {unknown}")
        if self.train_x is None:
            raise ValueError(f"this {self.name} model is not fitted")
        table = self._score(self.features(x))  # name -> (n, K) per condition
        out = {}
        for name in scores:
            values = table[name]
            if per_condition:
                out[name] = values
            elif c is not None and values.shape[1] > 1:
                out[name] = values[np.arange(len(values)), np.asarray(c)]
            else:
                out[name] = values.min(axis=1)
        return out

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Each base score of the features, (n, K) with one column per condition (K = 1 for a
        detector that does not use conditions); float64, higher = more anomalous."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ files
    def state_dict(self) -> dict[str, np.ndarray]:
        """What a saved model holds: the training data it was fitted on, and their conditions."""
        if self.train_x is None or self.train_c is None:
            raise ValueError(f"this {self.name} model is not fitted")
        return {"train_x": self.train_x, "train_c": self.train_c}

    @classmethod
    def from_state(cls, config: ClassicalConfig, arrays: dict[str, np.ndarray]) -> ClassicalModel:
        """Fit again, deterministically, on the saved training data; refuses arrays that do not fit
        the config (a ValueError naming the array)."""
        if set(arrays) != {"train_x", "train_c"}:
            raise ValueError(f"expected the arrays ['train_c', 'train_x'], found {sorted(arrays)}")
        x, c = arrays["train_x"], arrays["train_c"]
        if x.shape[1:] != tuple(config.input_shape) or x.dtype not in (np.uint8, np.float32):
            raise ValueError(f"array 'train_x' has shape {x.shape} {x.dtype}; the config implies "
                             f"(n, {', '.join(map(str, config.input_shape))}) uint8 or float32")
        if c.shape != (len(x),) or c.dtype != np.int64:
            raise ValueError(f"array 'train_c' must be int64 of shape ({len(x)},), got {c.dtype} {c.shape}")
        k = max(1, len(config.condition_names))
        if len(c) and (c.min() < 0 or c.max() >= k):
            raise ValueError(f"array 'train_c' holds conditions outside 0..{k - 1}")
        if x.dtype == np.float32 and not np.isfinite(x).all():
            raise ValueError("array 'train_x' holds NaN or infinite values")
        return cls(config).fit(x, c)


def _flatten(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    return flat.astype(np.float32) / 255.0 if flat.dtype == np.uint8 else flat.astype(np.float32)


def _available_memory() -> int | None:
    """Bytes of physical memory available now (Linux and macOS), or None where unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def classical_class(name: str) -> type[ClassicalModel]:
    if name not in CLASSICAL:
        hint = get_close_matches(name, CLASSICAL, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown classical model {name!r}{suggestion}; choose one of {sorted(CLASSICAL)}")
    return CLASSICAL[name]
