"""The latent scores: how typical an input's code is among the codes of the normal training data.

After training, the posterior means mu(x, c) of the normal *training* data, each at its own
condition, are kept in two forms:

- ``latent``: per condition a Gaussian (mean and Ledoit-Wolf covariance, from scikit-learn). The
  score of an input under condition c is its code's negative log-density under that condition's
  Gaussian. It is the learned model's twin of the classical ``pca-gauss`` detector, with the
  encoder in place of PCA, and, for dCVAE, an empirical counterpart of its conditional prior
  r(z|c) (the ``prior`` score).
- ``latent-knn``: the codes themselves (at most ``MAX_CODES``, a seeded subsample above that). The
  score under condition c is the mean Euclidean distance of the code to its ``LATENT_KNN_K``
  nearest training codes of condition c: the twin of the classical ``knn`` detector, in code space.

In marginal mode each is the minimum over the conditions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

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


#: the k of ``latent-knn``, chosen on MNIST and Fashion-MNIST validation AUC
#: (``benchmarks/latent_knn_probe.py``: 0.8109 for k = 20, 0.8107 for 5, 0.7772 for 1)
LATENT_KNN_K = 20
#: codes kept for ``latent-knn`` at most (a seeded subsample above it): 3.2 MB at 16 dimensions
MAX_CODES = 50_000


@dataclass(frozen=True)
class LatentCodes:
    """The normal training codes grouped by condition: ``codes`` (N, d), the rows of condition j
    being ``codes[offsets[j]:offsets[j + 1]]``; ``offsets`` (K + 1,)."""

    codes: Tensor
    offsets: Tensor

    @classmethod
    def of(cls, z: np.ndarray, groups: np.ndarray, n_conditions: int, *, seed: int = 0) -> LatentCodes:
        """Codes ``z`` of conditions ``groups``, at most ``MAX_CODES`` of them (seeded)."""
        if len(z) > MAX_CODES:
            keep = np.sort(np.random.default_rng(seed).choice(len(z), MAX_CODES, replace=False))
            z, groups = z[keep], groups[keep]
        order = np.argsort(groups, kind="stable")
        offsets = np.searchsorted(groups[order], np.arange(n_conditions + 1))
        return cls(torch.as_tensor(z[order], dtype=torch.float32),
                   torch.as_tensor(offsets, dtype=torch.int64))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"latent.codes": self.codes.numpy(), "latent.code_offsets": self.offsets.numpy()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_conditions: int, latent_dim: int
                    ) -> LatentCodes | None:
        """The codes saved with a detector (None when it has none: saved before ``latent-knn``)."""
        if "latent.codes" not in arrays or "latent.code_offsets" not in arrays:
            return None
        codes, offsets = arrays["latent.codes"], arrays["latent.code_offsets"]
        if codes.ndim != 2 or codes.shape[1] != latent_dim or offsets.shape != (n_conditions + 1,):
            raise ValueError(f"arrays 'latent.codes' {codes.shape} and 'latent.code_offsets' {offsets.shape} "
                             f"do not fit {n_conditions} conditions of {latent_dim} dimensions")
        if offsets[0] != 0 or offsets[-1] != len(codes) or np.any(np.diff(offsets) < 0):
            raise ValueError("array 'latent.code_offsets' must rise from 0 to the number of codes")
        return cls(torch.from_numpy(np.asarray(codes, dtype=np.float32)),
                   torch.from_numpy(np.asarray(offsets, dtype=np.int64)))

    @cached_property
    def table(self) -> NeighbourTable:
        """The codes in fixed shapes (one graph computes it: the ONNX export uses it too)."""
        return NeighbourTable.of(self)

    def distance(self, mu: Tensor, c: Tensor | None, k: int = LATENT_KNN_K) -> Tensor:
        """Mean distance of each row's code to its k nearest codes of its condition (condition 0
        when ``c`` is None; all the codes for a condition without any); (B,)."""
        table = self.table if k == LATENT_KNN_K else NeighbourTable.of(self, k)
        index = torch.zeros(mu.shape[0], dtype=torch.long) if c is None else c.cpu()
        out = torch.empty(mu.shape[0], dtype=torch.float64)
        step = max(1, _PAIRS // table.codes.shape[1])  # bounds the (rows, codes) distance matrix
        for j in index.unique().tolist():
            rows = (index == j).nonzero().squeeze(1)
            for part in rows.split(step):
                out[part] = table.mean_distance(mu[part.to(mu.device)][None], j).squeeze(0).cpu()
        return out.to(mu.device)


#: (query, code) pairs of one distance matrix at most: 32 MB of float64
_PAIRS = 1 << 22
#: squared distance given to the padding rows of a condition with fewer codes than the largest:
#: finite, so that a zero weight times it stays zero
_FAR = 1e30


@dataclass(frozen=True)
class NeighbourTable:
    """``LatentCodes`` in fixed shapes, float64: per condition j its codes less their mean
    ``centres[j]`` (K, d), padded to the largest condition (``codes`` (K, M, d)), their squared
    norms (``sqnorms`` (K, M), ``_FAR`` at the padding) and ``weights`` (K, k): 1 / k_j on a
    condition's k_j = min(k, n_j) nearest, 0 beyond."""

    centres: Tensor
    codes: Tensor
    sqnorms: Tensor
    weights: Tensor

    @classmethod
    def of(cls, latent: LatentCodes, k: int = LATENT_KNN_K) -> NeighbourTable:
        codes, offsets = latent.codes.double(), latent.offsets.tolist()
        groups = [codes[a:b] if b > a else codes for a, b in itertools.pairwise(offsets)]
        width = max(len(g) for g in groups)
        kk = min(k, width)
        centres = torch.stack([g.mean(dim=0) for g in groups])
        padded = torch.zeros(len(groups), width, codes.shape[1], dtype=torch.float64)
        sqnorms = torch.full((len(groups), width), _FAR, dtype=torch.float64)
        weights = torch.zeros(len(groups), kk, dtype=torch.float64)
        for j, g in enumerate(groups):
            padded[j, :len(g)] = g - centres[j]
            sqnorms[j, :len(g)] = padded[j, :len(g)].square().sum(dim=1)
            weights[j, :min(k, len(g))] = 1.0 / min(k, len(g))
        return cls(centres, padded, sqnorms, weights)

    def mean_distance(self, query: Tensor, conditions: int | slice = slice(None)) -> Tensor:
        """Mean distance of each code of ``query`` (G, B, d) to its nearest codes of condition g
        of ``conditions`` (one index, or all of them); (G, B) float64.

        The squared distances are |q|^2 - 2 q.r + |r|^2 of codes less their condition's mean, in
        float64: a matrix product (the same operations in an ONNX graph) without the cancellation
        of float32 at nearby codes (``benchmarks/latent_knn_speed.py``)."""
        sel = slice(conditions, conditions + 1) if isinstance(conditions, int) else conditions
        device = query.device
        centres, codes = self.centres[sel].to(device), self.codes[sel].to(device)
        sqnorms, weights = self.sqnorms[sel].to(device), self.weights[sel].to(device)
        q = query.double() - centres[:, None, :]
        # |r|^2 - 2 q.r in one product; |q|^2, the same for a row's every code, after the search
        partial = torch.baddbmm(sqnorms[:, None, :], q, codes.transpose(1, 2), alpha=-2)
        d2 = partial.topk(weights.shape[1], dim=-1, largest=False).values + q.square().sum(-1, keepdim=True)
        return (d2.clamp_min(0).sqrt() * weights[:, None, :]).sum(dim=-1)


@torch.no_grad()
def training_codes(model: VAE, x: np.ndarray, c: np.ndarray, *, batch_size: int = 1024,
                   precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """The posterior means (n, d) of training data ``x`` at their own conditions ``c`` (indices;
    ignored by an unconditional model), and the condition of each (0 for an unconditional one)."""
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
    return np.concatenate(codes).astype(np.float64), groups


def fit_latent_gaussians(model: VAE, x: np.ndarray, c: np.ndarray, *, batch_size: int = 1024,
                         precision: str = "fp32",
                         codes: tuple[np.ndarray, np.ndarray] | None = None) -> LatentGaussians:
    """Fit one Gaussian per condition to the posterior means of *normal training* data ``x`` at
    their own conditions ``c`` (``training_codes``, or the ``codes`` it already gave). A condition
    with fewer than 2 training samples gets the Gaussian of all the codes."""
    z, groups = codes if codes is not None else training_codes(model, x, c, batch_size=batch_size,
                                                               precision=precision)
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
