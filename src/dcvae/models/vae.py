"""VAE, beta-VAE and CVAE: the shared ELBO with a standard normal prior."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dcvae.models.base import VAE, VAEConfig, _check_positive
from dcvae.models.registry import register_model

register_model(VAE)


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    """beta > 1 trades reconstruction for a more factorised posterior (Higgins et al. 2017)."""

    beta: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "beta")


@register_model
class BetaVAE(VAE):
    """beta-VAE: -log p(x|z) + beta·KL(q(z|x) || N(0, I)) (paper Eq. 2)."""

    name = "beta-vae"
    config_class = BetaVAEConfig
    config: BetaVAEConfig

    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        kl_total = kl.sum(dim=1).mean()
        return self.config.beta * kl_total, {"kl": kl_total}


@register_model
class CVAE(VAE):
    """CVAE: -log p(x|z,c) + KL(q(z|x,c) || N(0, I)) (Sohn et al. 2015)."""

    name = "cvae"
    conditional = True
