"""PCA: the reconstruction error, and class-conditional Gaussians on the principal components."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from dcvae.classical.base import ClassicalConfig, ClassicalModel, register_classical
from dcvae.config import ConfigError


@dataclass(frozen=True)
class PCAConfig(ClassicalConfig):
    """n_components: principal components kept (at most the training samples or features)."""

    n_components: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_components < 1:
            raise ConfigError(f"n_components must be >= 1, got {self.n_components}")


def _pca(features: np.ndarray, n_components: int, seed: int, *, residual: bool) -> PCA:
    """PCA with at most as many components as the data allow (a documented fallback): fewer than
    the training samples, and, when the score is the residual, fewer than the features (all of
    them would reconstruct every input exactly)."""
    k = min(n_components, features.shape[0] - 1, features.shape[1] - int(residual))
    if k < 1:
        raise ValueError(f"PCA needs at least 2 training samples and 2 features, got "
                         f"{features.shape[0]} samples of {features.shape[1]} feature(s)")
    return PCA(n_components=k, random_state=seed).fit(features)


@register_classical
class PCADetector(ClassicalModel):
    """PCA: reconstruction error ‖x − x̂‖₂ from the leading principal components (scikit-learn)."""

    name = "pca"
    config_class = PCAConfig
    config: PCAConfig
    scores = ("recon",)

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        self.pca = _pca(features, self.config.n_components, self.config.seed, residual=True)

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        restored = self.pca.inverse_transform(self.pca.transform(features))
        return {"recon": np.linalg.norm(features - restored, axis=1).astype(np.float64)[:, None]}


@dataclass(frozen=True)
class PCAGaussConfig(PCAConfig):
    """n_components: principal components the Gaussians live on (50: the measurement that put this
    detector above every model of dcvae 0.1 on MNIST leave-one-out)."""

    n_components: int = 50


@register_classical
class PCAGauss(ClassicalModel):
    """PCA-Gauss: Gaussian NLL on the principal components, per condition (scikit-learn).

    In marginal mode the minimum over the conditions; one Gaussian without conditions. The
    classical twin of dCVAE's conditional prior."""

    name = "pca-gauss"
    config_class = PCAGaussConfig
    config: PCAGaussConfig
    conditional = True
    scores = ("gauss-nll",)

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        self.pca = _pca(features, self.config.n_components, self.config.seed, residual=False)
        codes = self._codes(features)
        self.gaussians = []
        for k in range(self.n_conditions):
            members = codes[c == k]
            if len(members) < 2:
                name = self.config.condition_names[k] if self.config.condition_names else k
                raise ValueError(f"pca-gauss: condition {name!r} has {len(members)} training sample(s); "
                                 "a Gaussian needs at least 2")
            # Ledoit-Wolf shrinkage keeps the covariance invertible with fewer samples than components
            gaussian = LedoitWolf().fit(members)
            _, logdet = np.linalg.slogdet(gaussian.covariance_)
            self.gaussians.append((gaussian, logdet))

    def _codes(self, features: np.ndarray) -> np.ndarray:
        # float64: float32 products round differently with the batch size (BLAS blocking), and a
        # sample's score must not depend on the batch it is scored in
        return self.pca.transform(features.astype(np.float64))

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        codes = self._codes(features)
        d = codes.shape[1]
        nll = np.column_stack([0.5 * (g.mahalanobis(codes) + logdet + d * math.log(2 * math.pi))
                               for g, logdet in self.gaussians])
        return {"gauss-nll": nll.astype(np.float64)}
