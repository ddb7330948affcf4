"""Anomaly scores (SPEC "Anomaly scores"): higher = more anomalous, deterministic, batched.

- ``recon``: A(x) = ||x - x̂||₂ with x̂ the decoder's mean at z = mu(x, c) (paper Eq. 17).
- ``elbo``: the negative ELBO E(x): -log p(x | z = mu, c) + KL(q(z|x,c) || p(z|c)), the KL going
  to the model's own prior (r(z|c) for dCVAE); with ``n_samples`` > 0 the reconstruction term
  averages that many posterior samples drawn from a generator seeded by ``seed``.
- ``kl``: the KL term alone, how far the posterior lies from the (conditional) prior.
- ``prior``: -log p(mu(x, c) | c), the prior's density at the posterior mean (r(z|c) for dCVAE):
  how atypical the code itself is under the condition, whatever the posterior's spread.

Conditional models score in ``given`` mode when conditions are passed, and in ``marginal`` mode
(the minimum over every training condition; no test label used) when they are not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from dcvae.models.base import VAE
from dcvae.training import autocast


@dataclass(frozen=True)
class Posterior:
    """What every score is computed from, for one batch under one condition assignment."""

    model: VAE
    x: Tensor
    c: Tensor | None
    mu: Tensor
    logvar: Tensor
    c_onehot: Tensor
    noise: Tensor | None  # (B, n_samples, d) standard normal draws, fixed per sample

    @cached_property
    def decoded(self) -> Tensor:
        """The decoder's output at z = mu, computed once for every score that needs it."""
        return self.model.decode(self.mu, self.c_onehot)


ScoreFn = Callable[[VAE, Posterior], Tensor]


def _recon(model: VAE, post: Posterior) -> Tensor:
    x_hat = model.reconstruction(post.decoded)
    return (post.x - x_hat).flatten(1).norm(dim=1)


def _kl(model: VAE, post: Posterior) -> Tensor:
    return model.kl_to_prior(post.mu, post.logvar, post.c).sum(dim=1)


def _prior(model: VAE, post: Posterior) -> Tensor:
    return -model.prior_log_density(post.mu, post.c).sum(dim=1)


def _elbo(model: VAE, post: Posterior) -> Tensor:
    if post.noise is None:
        nll = -model.log_likelihood(post.x, post.decoded)
    else:
        std = torch.exp(0.5 * post.logvar)
        nll = torch.zeros(post.x.shape[0], device=post.x.device)
        for k in range(post.noise.shape[1]):
            z = post.mu + post.noise[:, k] * std
            nll -= model.log_likelihood(post.x, model.decode(z, post.c_onehot))
        nll /= post.noise.shape[1]
    return nll + _kl(model, post)


SCORES: dict[str, ScoreFn] = {"recon": _recon, "elbo": _elbo, "kl": _kl, "prior": _prior}


def check_score_name(score: str) -> None:
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {sorted(SCORES)}")


def anomaly_scores(
    model: VAE,
    x: np.ndarray | Tensor,
    c: np.ndarray | Tensor | None = None,
    *,
    score: str = "recon",
    batch_size: int = 1024,
    n_samples: int = 0,
    seed: int = 0,
    precision: str = "fp32",
) -> np.ndarray:
    """Score every sample of ``x`` (raw: uint8 images or floats); returns float64 (n,).

    ``c`` holds condition *indices* for ``given`` mode; ``None`` on a conditional model means
    ``marginal`` mode. Inputs are assumed validated (see ``dcvae.validation``).
    ``precision="bf16"`` runs the matrix products in bfloat16 (see ``TrainConfig``).
    """
    return score_table(model, x, c, scores=(score,), batch_size=batch_size, n_samples=n_samples,
                       seed=seed, precision=precision)[score]


@torch.no_grad()
def score_table(
    model: VAE,
    x: np.ndarray | Tensor,
    c: np.ndarray | Tensor | None = None,
    *,
    scores: tuple[str, ...] = ("recon",),
    batch_size: int = 1024,
    n_samples: int = 0,
    seed: int = 0,
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Several scores of ``x`` from one encoder (and decoder) pass; each as ``anomaly_scores``
    gives it. In marginal mode each score takes its own minimum over the conditions."""
    for score in scores:
        check_score_name(score)
    model.eval()
    device = model.input_shift.device
    x_t = torch.as_tensor(x)
    c_t = None if c is None else torch.as_tensor(c, dtype=torch.long)
    marginal = model.conditional and c_t is None and model.n_conditions > 1
    conditions = model.n_conditions if marginal else 1
    # Keep about batch_size rows per forward pass even when every condition is tried.
    chunk = max(1, batch_size // conditions)
    out = {score: np.empty(x_t.shape[0], dtype=np.float64) for score in scores}
    noise = None
    if n_samples > 0:  # drawn once for the whole input, so scores do not depend on batch_size
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(x_t.shape[0], n_samples, model.config.latent_dim, generator=gen)
    for start in range(0, x_t.shape[0], chunk):
        xb = model.prepare(x_t[start:start + chunk])
        b = xb.shape[0]
        if marginal:
            cb: Tensor | None = torch.arange(conditions, device=device).repeat(b)
        else:
            cb = None if c_t is None else c_t[start:start + chunk].to(device)
        nb = None if noise is None else noise[start:start + chunk].to(device)
        if nb is not None and marginal:
            nb = nb.repeat_interleave(conditions, dim=0)
        onehot = model.condition_onehot(cb, b * conditions)
        with autocast(device, precision):
            mu, logvar = model.encode_each(xb, onehot)  # the condition-free part once per sample
            if marginal:
                xb = xb.repeat_interleave(conditions, dim=0)
            post = Posterior(model, xb, cb, mu, logvar, onehot, nb)
            for score in scores:
                values = SCORES[score](model, post).float()
                if marginal:
                    values = values.view(b, conditions).min(dim=1).values
                out[score][start:start + b] = values.double().cpu().numpy()
    return out
