"""dCVAE (paper Eq. 16): a CVAE whose beta-weighted KL goes to a learned conditional prior r(z|c)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dcvae.math import total_correlation
from dcvae.models.base import LOGVAR_RANGE, VAE, VAEConfig, _check_positive
from dcvae.models.registry import register_model


@dataclass(frozen=True)
class DCVAEConfig(VAEConfig):
    """beta weighs sum_i KL(q(z_i|x,c) || r(z_i|c)); gamma weighs the optional TC(z|c)."""

    beta: float = 1.0
    gamma: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "beta", "gamma")


class ConditionalPrior(nn.Module):
    """r(z_i|c) = N(m_ci, s²_ci): one learned mean and log-variance per condition and dimension."""

    def __init__(self, n_conditions: int, latent_dim: int) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(n_conditions, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(n_conditions, latent_dim))

    def forward(self, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """(B, d) mean and log-variance for conditions c (B,); condition 0 when c is None."""
        if c is None:
            return self.mean[:1], self.logvar[:1].clamp(*LOGVAR_RANGE)
        return self.mean[c], self.logvar[c].clamp(*LOGVAR_RANGE)


@register_model
class DCVAE(VAE):
    """dCVAE: -log p(x|z,c) + beta·sum_i KL(q(z_i|x,c) || r(z_i|c)) [+ gamma·TC(z|c)] (Eq. 16).

    r(z|c) is trained jointly with the encoder and decoder. TC(z|c), the total correlation of the
    aggregate posterior within each condition (Eq. 10's third term), is estimated over the batch
    samples that share c.
    """

    name = "dcvae"
    conditional = True
    config_class = DCVAEConfig
    config: DCVAEConfig

    def __init__(self, config: DCVAEConfig) -> None:
        super().__init__(config)
        self.conditional_prior = ConditionalPrior(self.n_conditions, config.latent_dim)

    def prior(self, c: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        return self.conditional_prior(c)

    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        kl_total = kl.sum(dim=1).mean()
        penalty = self.config.beta * kl_total
        terms = {"kl": kl_total}
        if self.config.gamma > 0:
            tc = total_correlation(z, mu, logvar, groups=c)
            penalty = penalty + self.config.gamma * tc
            terms["tc"] = tc
        return penalty, terms
