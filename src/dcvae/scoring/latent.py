"""The latent score: how typical an input's code is among the codes of the normal training data.

After training, the posterior means mu(x, c) of the normal *training* data, each at its own
condition, are summarised per condition by a Gaussian (mean and Ledoit-Wolf covariance, from
scikit-learn). The score of an input under condition c is its code's negative log-density under
that condition's Gaussian; in marginal mode, the minimum over the conditions. It is the learned
model's twin of the classical ``pca-gauss`` detector, with the encoder in place of PCA, and, for
dCVAE, an empirical counterpart of its conditional prior r(z|c) (the ``prior`` score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from torch import Tensor

from dcvae.models.base import VAE
from dcvae.training.precision import autocast


@dataclass(frozen=True)
class LatentGaussians:
    """One Gaussian per condition over the codes: means (K, d), precisions (K, d, d), log
    determinants of the covariances (K,)."""

    means: Tensor
    precisions: Tensor
    logdets: Tensor

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"latent.means": self.means.numpy(), "latent.precisions": self.precisions.numpy(),
                "latent.logdets": self.logdets.numpy()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_conditions: int, latent_dim: int
                    ) -> LatentGaussians | None:
        """The Gaussians saved with a detector (None when it has none: a model of dcvae 0.1)."""
        keys = ("latent.means", "latent.precisions", "latent.logdets")
        if not all(k in arrays for k in keys):
            return None
        shapes = {"latent.means": (n_conditions, latent_dim),
                  "latent.precisions": (n_conditions, latent_dim, latent_dim),
                  "latent.logdets": (n_conditions,)}
        for key in keys:
            if arrays[key].shape != shapes[key]:
                raise ValueError(f"array {key!r} has shape {arrays[key].shape}, the model implies "
                                 f"{shapes[key]}")
        return cls(*(torch.from_numpy(np.asarray(arrays[k], dtype=np.float32)) for k in keys))


@torch.no_grad()
def fit_latent_gaussians(model: VAE, x: np.ndarray, c: np.ndarray, *, batch_size: int = 1024,
                         precision: str = "fp32") -> LatentGaussians:
    """Fit one Gaussian per condition to the posterior means of *normal training* data ``x`` at
    their own conditions ``c`` (indices; ignored by an unconditional model). A condition with
    fewer than 2 training samples gets the Gaussian of all the codes."""
    model.eval()
    device = model.input_shift.device
    groups = (np.asarray(c, dtype=np.int64) if model.conditional and model.n_conditions > 1
              else np.zeros(len(x), dtype=np.int64))
    codes = []
    for start in range(0, len(x), batch_size):
        xb = model.prepare(torch.as_tensor(x[start:start + batch_size]))
        cb = torch.as_tensor(groups[start:start + batch_size], device=device)
        onehot = model.condition_onehot(cb if model.conditional else None, xb.shape[0])
        with autocast(device, precision):
            mu, _ = model.encode(xb, onehot)
        codes.append(mu.float().cpu().numpy())
    z = np.concatenate(codes).astype(np.float64)
    k = max(model.n_conditions, 1)
    pooled = _gaussian(z)
    means, precisions, logdets = [], [], []
    for j in range(k):
        members = z[groups == j]
        # a condition with fewer than 2 training codes borrows the Gaussian of all of them
        mean, precision_matrix, logdet = _gaussian(members) if len(members) >= 2 else pooled
        means.append(mean)
        precisions.append(precision_matrix)
        logdets.append(logdet)
    return LatentGaussians(*(torch.as_tensor(np.asarray(v), dtype=torch.float32)
                             for v in (means, precisions, logdets)))


def _gaussian(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, precision and log-determinant of the Ledoit-Wolf Gaussian of codes ``z``; a unit
    Gaussian at the one code when there is only one."""
    if len(z) < 2:
        d = z.shape[1]
        return (z[0] if len(z) else np.zeros(d)), np.eye(d), 0.0
    gaussian = LedoitWolf().fit(z)
    return gaussian.location_, gaussian.precision_, float(np.linalg.slogdet(gaussian.covariance_)[1])


def latent_nll(gaussians: LatentGaussians, mu: Tensor, c: Tensor | None) -> Tensor:
    """-log N(mu; m_c, S_c) of each row's code under its condition's Gaussian (condition 0 when
    ``c`` is None); (B,)."""
    index = torch.zeros(mu.shape[0], dtype=torch.long, device=mu.device) if c is None else c
    means = gaussians.means.to(mu.device)[index]
    diff = (mu.float() - means)
    maha = torch.einsum("bi,bij,bj->b", diff, gaussians.precisions.to(mu.device)[index], diff)
    return 0.5 * (maha + gaussians.logdets.to(mu.device)[index] + mu.shape[1] * math.log(2 * math.pi))
