"""Anomaly scores (SPEC "Anomaly scores"): higher = more anomalous, deterministic, batched.

- ``recon``: :func:`reconstruction_error`, the paper's Eq. 17, A(x) = ||x - x̂||₂ with x̂ the
  decoder's mean at z = mu(x, c).
- ``elbo``: :func:`negative_elbo`, E(x) = -log p(x | z = mu, c) + KL(q(z|x,c) || p(z|c)), the KL
  going to the model's own prior (r(z|c) for dCVAE); with ``n_samples`` > 0 the reconstruction
  term averages that many posterior samples drawn from a generator seeded by ``seed``.
- ``kl``: :func:`kl_to_prior`, the KL term alone, how far the posterior lies from the prior.
- ``prior``: :func:`prior_surprise`, -log p(mu(x, c) | c), the prior's density at the posterior
  mean (r(z|c) for dCVAE): how atypical the code itself is under the condition.
- ``latent``: :func:`latent_surprise`, -log N(mu(x, c); m_c, S_c) under Gaussians fitted to the
  codes of the normal training data per condition (``dcvae.scoring.latent``).
- ``latent-knn``: :func:`latent_neighbour_distance`, the mean distance of mu(x, c) to its nearest
  codes of the normal training data of condition c (``dcvae.scoring.latent``).

Conditional models score in one of two modes (:func:`condition_mode`): ``given`` when conditions
are passed, ``marginal`` (the minimum over every training condition; no test label used) when
they are not. Every caller — the detector, the benchmark, the report — goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import Tensor

from dcvae.models.base import VAE
from dcvae.scoring.latent import latent_nll
from dcvae.training.allocator import keep_freed_memory
from dcvae.training.precision import autocast

if TYPE_CHECKING:
    from dcvae.classical import ClassicalModel

GIVEN, MARGINAL, UNCONDITIONAL = "given", "marginal", "unconditional"


def condition_mode(model: VAE | ClassicalModel, c: object | None) -> str:
    """How ``model`` scores inputs with conditions ``c``: ``unconditional`` (the model has none),
    ``given`` (c passed) or ``marginal`` (c left out: the minimum over the training conditions)."""
    if not model.conditional:
        return UNCONDITIONAL
    return GIVEN if c is not None else MARGINAL


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


def reconstruction_error(model: VAE, post: Posterior) -> Tensor:
    """Eq. 17: A(x) = ||x - x̂||₂, x̂ the decoder's mean at z = mu(x, c); (B,)."""
    x_hat = model.reconstruction(post.decoded)
    return (post.x - x_hat).flatten(1).norm(dim=1)


def kl_to_prior(model: VAE, post: Posterior) -> Tensor:
    """KL(q(z|x,c) || p(z|c)) summed over latent dimensions; (B,)."""
    return model.kl_to_prior(post.mu, post.logvar, post.c).sum(dim=1)


def prior_surprise(model: VAE, post: Posterior) -> Tensor:
    """-log p(mu(x, c) | c), the prior's density at the posterior mean; (B,)."""
    return -model.prior_log_density(post.mu, post.c).sum(dim=1)


def negative_elbo(model: VAE, post: Posterior) -> Tensor:
    """E(x) = -log p(x | z, c) + KL(q(z|x,c) || p(z|c)), at z = mu or averaged over fixed samples."""
    if post.noise is None:
        nll = -model.log_likelihood(post.x, post.decoded)
    else:
        std = torch.exp(0.5 * post.logvar)
        nll = torch.zeros(post.x.shape[0], device=post.x.device)
        for k in range(post.noise.shape[1]):
            z = post.mu + post.noise[:, k] * std
            nll -= model.log_likelihood(post.x, model.decode(z, post.c_onehot))
        nll /= post.noise.shape[1]
    return nll + kl_to_prior(model, post)


def latent_surprise(model: VAE, post: Posterior) -> Tensor:
    """-log N(mu(x, c); m_c, S_c), the Gaussians fitted to the normal training codes; (B,)."""
    gaussians = getattr(model, "latent_gaussians", None)
    if gaussians is None:
        raise ValueError("the latent score needs the Gaussians of the training codes, which this model "
                         "does not have (it was not fitted by AnomalyDetector, or by dcvae 0.1)")
    return latent_nll(gaussians, post.mu, post.c if model.conditional else None)


def latent_neighbour_distance(model: VAE, post: Posterior) -> Tensor:
    """Mean distance of mu(x, c) to its ``LATENT_KNN_K`` nearest normal training codes of c; (B,)."""
    codes = getattr(model, "latent_codes", None)
    if codes is None:
        raise ValueError("the latent-knn score needs the codes of the training data, which this model "
                         "does not have (it was not fitted by AnomalyDetector, or was saved before "
                         "latent-knn existed)")
    return codes.distance(post.mu, post.c if model.conditional else None)


SCORES: dict[str, ScoreFn] = {"recon": reconstruction_error, "elbo": negative_elbo, "kl": kl_to_prior,
                              "prior": prior_surprise, "latent": latent_surprise,
                              "latent-knn": latent_neighbour_distance}


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
    ``marginal`` mode. Inputs are assumed canonical (see ``dcvae.data.canonical``).
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
    per_condition: bool = False,
) -> dict[str, np.ndarray]:
    """Several scores of ``x`` from one encoder (and decoder) pass; each as ``anomaly_scores``
    gives it. In marginal mode each score takes its own minimum over the conditions, or, with
    ``per_condition=True``, comes back as (n, K): column k is the score under condition k (so one
    pass gives the marginal minimum and the given-mode score of any assignment)."""
    for score in scores:
        check_score_name(score)
    n = len(x)
    out: dict[str, np.ndarray] = {}
    for start, b, k, post in _posteriors(model, x, c, batch_size, n_samples, seed, precision):
        for score in scores:
            with autocast(post.x.device, precision):
                values = SCORES[score](model, post).float()
            if k > 1:
                values = values.view(b, k)
                if not per_condition:
                    values = values.min(dim=1).values
            elif per_condition:
                values = values.view(b, 1)
            if score not in out:
                out[score] = np.empty((n, *values.shape[1:]), dtype=np.float64)
            out[score][start:start + b] = values.double().cpu().numpy()
    return out


@dataclass(frozen=True)
class Explanation:
    """Why samples got their score: the condition that gave it and what the model saw there.

    score: (n,) the score (marginal mode: its minimum over the conditions);
    condition: (n,) the condition index that gave it, None for unconditional models;
    mu, logvar, kl: (n, d) the posterior at that condition and its per-dimension KL to the prior;
    reconstruction: (n, *input_shape) the decoder's mean at z = mu, in input units.
    """

    score: np.ndarray
    condition: np.ndarray | None
    mu: np.ndarray
    logvar: np.ndarray
    kl: np.ndarray
    reconstruction: np.ndarray


@torch.no_grad()
def explain(model: VAE, x: np.ndarray | Tensor, c: np.ndarray | Tensor | None = None, *,
            score: str = "recon", batch_size: int = 1024, precision: str = "fp32") -> Explanation:
    """The posterior and reconstruction behind each sample's score: in marginal mode at the
    condition with the smallest ``score`` (the one marginal scoring takes), else at ``c``."""
    check_score_name(score)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("score", "condition", "mu", "logvar", "kl",
                                                        "reconstruction")}
    for _, b, k, post in _posteriors(model, x, c, batch_size, 0, 0, precision):
        with autocast(post.x.device, precision):
            values = SCORES[score](model, post).float().view(b, k)
            pick = torch.arange(b, device=values.device) * k + values.argmin(dim=1)
            c_pick = None if post.c is None else post.c[pick]
            mu, logvar = post.mu[pick], post.logvar[pick]
            x_hat = model.reconstruction(post.decoded[pick])
        parts["score"].append(values.min(dim=1).values)
        parts["mu"].append(mu)
        parts["logvar"].append(logvar)
        parts["kl"].append(model.kl_to_prior(mu, logvar, c_pick))
        parts["reconstruction"].append(x_hat * model.input_scale + model.input_shift)
        if model.conditional:
            parts["condition"].append(c_pick if c_pick is not None
                                      else torch.zeros(b, dtype=torch.long, device=values.device))
    arrays = {k: torch.cat(v).float().cpu().numpy() if v else None for k, v in parts.items()}
    condition = None if arrays["condition"] is None else arrays["condition"].astype(np.int64)
    filled = cast("dict[str, np.ndarray]", arrays)  # every batch fills all parts but "condition"
    return Explanation(filled["score"].astype(np.float64), condition, filled["mu"], filled["logvar"],
                       filled["kl"], filled["reconstruction"])


def _posteriors(model: VAE, x: np.ndarray | Tensor, c: np.ndarray | Tensor | None, batch_size: int,
                n_samples: int, seed: int, precision: str) -> Iterator[tuple[int, int, int, Posterior]]:
    """Batches of posteriors: (start, b samples, k conditions per sample, posterior of b·k rows).

    In marginal mode every sample is encoded under each of the K training conditions (rows
    sample-major); otherwise k = 1 at the given condition (or none). Callers run under
    ``torch.no_grad`` and compute their scores under the same ``autocast``."""
    model.eval()
    keep_freed_memory()
    device = model.input_shift.device
    x_t = torch.as_tensor(x)
    c_t = None if c is None else torch.as_tensor(c, dtype=torch.long)
    marginal = condition_mode(model, c_t) == MARGINAL and model.n_conditions > 1
    conditions = model.n_conditions if marginal else 1
    # Keep about batch_size rows per forward pass even when every condition is tried.
    chunk = max(1, batch_size // conditions)
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
        yield start, b, conditions, Posterior(model, xb, cb, mu, logvar, onehot, nb)
