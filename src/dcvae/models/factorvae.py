"""FactorVAE (Kim & Mnih 2018) and Relevance FactorVAE (Kim, Wang, Sahu & Pavlovic 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvae.math import permute_dims
from dcvae.models.base import VAE, ModelOutput, VAEConfig, _check_positive
from dcvae.models.registry import register_model
from dcvae.nn import Discriminator


@dataclass(frozen=True)
class FactorVAEConfig(VAEConfig):
    """gamma weighs the discriminator's TC estimate; discriminator_hidden sizes its MLP."""

    gamma: float = 6.4
    discriminator_hidden: tuple[int, ...] = (512, 512, 512)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "gamma")


@register_model
class FactorVAE(VAE):
    """FactorVAE: -log p(x|z) + KL + gamma·TC, TC = E[D(z)[0] - D(z)[1]] (paper Eq. 4).

    The discriminator D learns, in a secondary step with its own optimiser, to tell z from
    per-dimension-permuted z. The "second minibatch" of Kim & Mnih's Algorithm 2 is the second
    half of each batch: D sees the first half as drawn and the second half permuted.
    """

    name = "factorvae"
    config_class = FactorVAEConfig
    config: FactorVAEConfig

    def __init__(self, config: FactorVAEConfig) -> None:
        super().__init__(config)
        self.discriminator = Discriminator(config.latent_dim, config.discriminator_hidden)

    def discriminator_input(self, z: Tensor) -> Tensor:
        """What D judges: z itself here (RFVAE masks it by relevance)."""
        return z

    def discriminator_tc(self, z: Tensor) -> Tensor:
        logits = self.discriminator(self.discriminator_input(z)).float()
        return (logits[:, 0] - logits[:, 1]).mean()

    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        kl_total = kl.sum(dim=1).mean()
        tc = self.discriminator_tc(z)
        return kl_total + self.config.gamma * tc, {"kl": kl_total, "tc": tc}

    def secondary_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def secondary_loss(self, output: ModelOutput) -> tuple[Tensor, dict[str, Tensor]] | None:
        z = self.discriminator_input(output.z.detach()).detach()
        half = z.shape[0] // 2
        if half == 0:
            return None  # a batch of one sample has no second half to permute
        joint, permuted = z[:half], permute_dims(z[half:2 * half])
        logits = self.discriminator(torch.cat([joint, permuted])).float()
        target = torch.cat([torch.zeros(half), torch.ones(half)]).long().to(logits.device)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        return loss, {"discriminator": loss, "discriminator_accuracy": accuracy}


@dataclass(frozen=True)
class RFVAEConfig(FactorVAEConfig):
    """Reference defaults of Kim et al. 2019: lambda in [0.1, 10], gamma 6.4, eta_s 1, eta_h 100."""

    lambda_min: float = 0.1
    lambda_max: float = 10.0
    eta_s: float = 1.0
    eta_h: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "lambda_min", "lambda_max", "eta_s", "eta_h")


@register_model
class RFVAE(FactorVAE):
    """RFVAE: -log p(x|z) + sum_j lambda_j·KL_j + gamma·TC_D(r⊙z) + eta_s·sum r + eta_h·sum H(r_j).

    r = sigmoid(l), one learned relevance per latent dimension; lambda_j = lmax - (lmax - lmin)·r_j
    lets relevant dimensions keep information while irrelevant ones are pushed to the prior.
    """

    name = "rfvae"
    config_class = RFVAEConfig
    config: RFVAEConfig

    def __init__(self, config: RFVAEConfig) -> None:
        super().__init__(config)
        self.relevance_logits = nn.Parameter(torch.zeros(config.latent_dim))

    @property
    def relevance(self) -> Tensor:
        return torch.sigmoid(self.relevance_logits)

    def discriminator_input(self, z: Tensor) -> Tensor:
        return self.relevance * z

    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        r = self.relevance
        weights = cfg.lambda_max - (cfg.lambda_max - cfg.lambda_min) * r
        weighted_kl = (kl * weights).sum(dim=1).mean()
        tc = self.discriminator_tc(z)
        sparsity = r.sum()
        entropy = F.binary_cross_entropy(r, r, reduction="sum")  # sum_j H(r_j)
        penalty = weighted_kl + cfg.gamma * tc + cfg.eta_s * sparsity + cfg.eta_h * entropy
        return penalty, {"kl": kl.sum(dim=1).mean(), "weighted_kl": weighted_kl, "tc": tc,
                         "relevance_sum": sparsity, "relevance_entropy": entropy}
