"""beta-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation and
dimension-wise KL (paper Eq. 8), each with its own weight."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dcvae.math import gaussian_log_density, kl_decomposition
from dcvae.models.base import VAE, VAEConfig, _check_positive
from dcvae.models.registry import register_model


@dataclass(frozen=True)
class BetaTCVAEConfig(VAEConfig):
    """alpha weighs MI, beta the total correlation, gamma the dimension-wise KL."""

    alpha: float = 1.0
    beta: float = 6.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "alpha", "beta", "gamma")


@register_model
class BetaTCVAE(VAE):
    """beta-TCVAE: -log p(x|z) + alpha·MI + beta·TC + gamma·sum_k KL(q(z_k) || p(z_k)).

    Each term is a minibatch estimate from the batch's posteriors (``kl_decomposition``).
    """

    name = "beta-tcvae"
    config_class = BetaTCVAEConfig
    config: BetaTCVAEConfig

    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        parts = kl_decomposition(z, mu, logvar)
        zero = torch.zeros_like(z)
        log_pz = gaussian_log_density(z, zero, zero).sum(dim=1)
        mi = (parts["log_qz_x"] - parts["log_qz"]).mean()
        tc = (parts["log_qz"] - parts["log_prod_qzi"]).mean()
        dimwise_kl = (parts["log_prod_qzi"] - log_pz).mean()
        penalty = cfg.alpha * mi + cfg.beta * tc + cfg.gamma * dimwise_kl
        return penalty, {"kl": kl.sum(dim=1).mean(), "mi": mi, "tc": tc, "dimwise_kl": dimwise_kl}
