"""k-nearest neighbours: the mean distance to the k nearest normal training samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from dcvae.classical.base import ClassicalConfig, ClassicalModel, register_classical
from dcvae.config import ConfigError


@dataclass(frozen=True)
class KNNConfig(ClassicalConfig):
    """n_neighbors: the k of the mean distance."""

    n_neighbors: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be >= 1, got {self.n_neighbors}")


@register_classical
class KNN(ClassicalModel):
    """kNN: mean L2 distance to the k nearest normal training samples (scikit-learn)."""

    name = "knn"
    config_class = KNNConfig
    config: KNNConfig
    scores = ("distance",)

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        k = self.config.n_neighbors
        if k > len(features):
            raise ValueError(f"knn: n_neighbors is {k}, but the training data has only {len(features)} "
                             "samples")
        self.index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(features)

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        distances, _ = self.index.kneighbors(features)
        return {"distance": distances.mean(axis=1, dtype=np.float64)[:, None]}
