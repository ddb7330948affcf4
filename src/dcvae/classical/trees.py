"""Isolation forest: how quickly random splits isolate a sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

from dcvae.classical.base import ClassicalConfig, ClassicalModel, register_classical
from dcvae.config import ConfigError


@dataclass(frozen=True)
class IForestConfig(ClassicalConfig):
    """n_estimators: trees; max_samples: samples drawn per tree (scikit-learn's default 256)."""

    n_estimators: int = 100
    max_samples: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_estimators < 1 or self.max_samples < 2:
            raise ConfigError(f"n_estimators must be >= 1 and max_samples >= 2, got "
                              f"{self.n_estimators}, {self.max_samples}")


@register_classical
class IForest(ClassicalModel):
    """IForest: isolation forest, the negated score_samples of scikit-learn's IsolationForest."""

    name = "iforest"
    config_class = IForestConfig
    config: IForestConfig
    scores = ("isolation",)

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        cfg = self.config
        self.forest = IsolationForest(n_estimators=cfg.n_estimators,
                                      max_samples=min(cfg.max_samples, len(features)),
                                      random_state=cfg.seed).fit(features)

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return {"isolation": -self.forest.score_samples(features).astype(np.float64)[:, None]}
