"""The shared ELBO. Every model of the library is this class plus its own regulariser.

A subclass changes what it must and nothing else: the prior (dCVAE's learned r(z|c)), the
regulariser added to the reconstruction term (beta, TC, relevance, ...), and, for models with a
discriminator, one secondary optimisation step. The trainer and the anomaly scores only ever talk
to this interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvae.config import ConfigError, StrictConfig
from dcvae.math import LOGVAR_RANGE, gaussian_kl, gaussian_log_density
from dcvae.models import generation
from dcvae.models.likelihood import LIKELIHOODS, Likelihood, build_likelihood
from dcvae.nn import AUTO, BACKBONES, ConditionalEncoder, build_backbone, resolve_backbone


def _posterior(encoded: Tensor) -> tuple[Tensor, Tensor]:
    """The encoder's 2·d outputs → mean and clamped log-variance."""
    # .float(): under bf16 autocast only the matmuls run in bf16; the Gaussian algebra stays fp32
    mu, logvar = encoded.float().chunk(2, dim=1)
    return mu, logvar.clamp(*LOGVAR_RANGE)


#: The most weights a model may have: 2**29 float32 weights are 2 GiB, and Adam keeps three times
#: that again while training.
MAX_PARAMETERS = 2**29


@dataclass(frozen=True)
class VAEConfig(StrictConfig):
    """Architecture shared by all models.

    input_shape: (C, H, W) for images, (d,) for feature vectors.
    backbone: "mlp", "conv", or "auto" (conv for images of at least 4×4, mlp otherwise), which the
        config resolves on construction, so a built or saved model always names its backbone.
    condition_names: the conditions c (one name per index); empty for unconditional data.
    likelihood: "bernoulli" (inputs in [0, 1]) or "gaussian" (learned per-feature variance); see
    ``dcvae.models.likelihood``.
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    backbone: str = "mlp"
    hidden_dims: tuple[int, ...] = (512, 256)
    likelihood: str = "bernoulli"
    condition_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.input_shape) not in (1, 3) or any(s < 1 for s in self.input_shape):
            raise ConfigError(
                f"input_shape must be (C, H, W) or (d,) with positive sizes, got {self.input_shape}"
            )
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.backbone not in (*BACKBONES, AUTO):
            raise ConfigError(f"backbone must be one of {sorted((*BACKBONES, AUTO))}, got {self.backbone!r}")
        object.__setattr__(self, "backbone", resolve_backbone(self.backbone, self.input_shape))  # frozen
        if not self.hidden_dims or any(h < 1 for h in self.hidden_dims):
            raise ConfigError(f"hidden_dims must be positive sizes, got {self.hidden_dims}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {self.likelihood!r}")
        if len(set(self.condition_names)) != len(self.condition_names):
            raise ConfigError(f"condition_names must be unique, got {self.condition_names}")
        n = self.estimated_parameters()
        if n > MAX_PARAMETERS:  # refused before anything is allocated (a config.json may say 10**30)
            raise ConfigError(
                f"the model would have about {n:.3g} weights ({4 * n / 2**30:.3g} GiB), more than the "
                f"{MAX_PARAMETERS:.3g} allowed: lower hidden_dims or latent_dim, or give images a smaller "
                f"size (CLI: --size HxW); input_shape {self.input_shape}, hidden_dims {self.hidden_dims}, "
                f"latent_dim {self.latent_dim}"
            )

    def estimated_parameters(self) -> int:
        """The weights of the encoder and decoder as fully connected layers (exact for the MLP, an
        upper bound for the conv backbone's early layers): Python ints, so no size overflows."""
        sizes = [math.prod(self.input_shape), *self.hidden_dims, self.latent_dim]
        return 2 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False)) + len(self.condition_names) * (
            self.hidden_dims[0] + self.latent_dim)


def _check_positive(config: StrictConfig, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)}")


@dataclass
class ModelOutput:
    """What one forward pass hands the trainer.

    loss: the scalar the primary optimiser minimises.
    terms: named scalar quantities for the history (unweighted: ``kl`` is the KL itself).
    z, mu, logvar: the posterior sample and parameters, (B, d), for a secondary step.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    z: Tensor
    mu: Tensor
    logvar: Tensor
    c: Tensor | None = None


class VAE(nn.Module):
    """Kingma & Welling's VAE: -log p(x|z) + KL(q(z|x) || N(0, I)) (paper Eq. above (1))."""

    name: ClassVar[str] = "vae"
    config_class: ClassVar[type[VAEConfig]] = VAEConfig
    conditional: ClassVar[bool] = False
    #: The anomaly score a detector uses when none is asked for (dcvae.scoring.family's names).
    default_score: ClassVar[str] = "recon"
    #: Buffers registered in ``__init__`` (declared so that attribute access is typed).
    input_shift: Tensor
    input_scale: Tensor

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        # An unconditional model sees no condition; a conditional one on unconditioned data sees
        # one constant condition.
        self.n_conditions = max(1, len(config.condition_names)) if self.conditional else 0
        self.encoder_conditions = self.n_conditions if self.encoder_sees_condition() else 0
        backbone = build_backbone(config.backbone, config.input_shape, self.n_conditions,
                                  config.hidden_dims, config.latent_dim,
                                  encoder_conditions=self.encoder_conditions)
        self.encoder = backbone.encoder
        self.decoder = backbone.decoder
        self.likelihood: Likelihood = build_likelihood(config.likelihood, config.input_shape)
        # Fixed affine map from raw inputs to the model's space (feature standardisation for
        # tabular data); saved with the weights so scoring always sees what training saw.
        self.register_buffer("input_shift", torch.zeros(config.input_shape))
        self.register_buffer("input_scale", torch.ones(config.input_shape))
        # Gaussians of the normal training codes per condition, and the codes themselves, fitted
        # after training by the detector (dcvae.scoring.latent); not weights: saved with the
        # detector's arrays.
        self.latent_gaussians: Any = None
        self.latent_codes: Any = None

    @classmethod
    def config_for_data(cls, params: dict[str, Any], *, input_shape: tuple[int, ...],
                        condition_names: tuple[str, ...], likelihood: str, seed: int) -> VAEConfig:
        """The config of a model of this class for the data at hand (what the detector builds)."""
        return cls.config_class.from_dict({**params, "input_shape": list(input_shape),
                                           "likelihood": likelihood,
                                           "condition_names": list(condition_names)}, where=cls.name)

    def check_inputs(self, x: np.ndarray, *, name: str = "X") -> None:
        """Refuse canonical inputs the model cannot score (the likelihood's rule)."""
        self.likelihood.check_inputs(x, name=name)

    # ----------------------------------------------------------------------------- the pieces
    def prepare(self, x: Tensor) -> Tensor:
        """Raw batch → model input: uint8 images become floats in [0, 1], then standardised."""
        x = x.to(self.input_shift.device)
        # (x / 255 - shift) / scale as one multiply-add: two fewer passes over the batch
        inv = self.input_scale.reciprocal()
        if x.dtype == torch.uint8:  # float() made a copy: scale it in place
            return x.float().mul_(inv / 255.0).sub_(self.input_shift * inv)
        return torch.addcmul(-self.input_shift * inv, x.float(), inv)

    @torch.no_grad()
    def fit_input_standardisation(self, x: Tensor) -> None:
        """Set the input map to feature standardisation with the statistics of training data ``x``
        (raw, as ``prepare`` takes it); features that do not vary keep scale 1."""
        data = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        shift = data.mean(dim=0)
        scale = data.std(dim=0, unbiased=False)
        scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
        self.input_shift.copy_(shift)
        self.input_scale.copy_(scale)

    def condition_onehot(self, c: Tensor | None, batch: int) -> Tensor:
        """(B, K) one-hot of c; (B, 0) for unconditional models."""
        device = self.input_shift.device
        if not self.conditional:
            return torch.zeros(batch, 0, device=device)
        if c is None:
            if self.n_conditions == 1:
                c = torch.zeros(batch, dtype=torch.long, device=device)
            else:
                raise ValueError(
                    f"{self.name} is conditional: pass c (one of {self.n_conditions} conditions)"
                )
        return F.one_hot(c.to(device), self.n_conditions).float()

    def encoder_sees_condition(self) -> bool:
        """Whether c enters the encoder (always, but for dCVAE's ``encoder_condition=False``)."""
        return True

    def encode(self, x: Tensor, c_onehot: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x,c): mean and clamped log-variance, each (B, d). An encoder blind to c sees none."""
        return _posterior(self.encoder(x, c_onehot[:, :self.encoder_conditions]))

    def encode_each(self, x: Tensor, c_onehot: Tensor) -> tuple[Tensor, Tensor]:
        """``encode`` for scoring: each of the B samples of ``x`` under R conditions, the rows of
        ``c_onehot`` (B·R, sample-major as ``repeat_interleave`` orders them). The encoder's
        condition-free part runs once per sample, not R times (marginal mode tries every
        condition). Equal to ``encode`` of the repeated x up to float rounding; the scores use
        this path in both modes, so they stay consistent with each other."""
        b, rows = x.shape[0], c_onehot.shape[0]
        if (b == 0) != (rows == 0) or (b and rows % b):
            raise ValueError(f"{rows} condition rows for {b} samples: expected a whole multiple")
        repeats = rows // b if b else 1
        if not self.encoder_conditions and self.n_conditions:  # c does not reach the encoder
            mu, logvar = self.encode(x, x.new_zeros(b, 0))
            return mu.repeat_interleave(repeats, dim=0), logvar.repeat_interleave(repeats, dim=0)
        if not isinstance(self.encoder, ConditionalEncoder):  # a user's encoder without the split
            return self.encode(x.repeat_interleave(repeats, dim=0), c_onehot)
        h = self.encoder.condition_free(x)
        if repeats > 1:
            h = h.repeat_interleave(repeats, dim=0)
        return _posterior(self.encoder.conditioned(h, c_onehot))

    def decode(self, z: Tensor, c_onehot: Tensor) -> Tensor:
        """Parameters of p(x|z,c): Bernoulli logits or Gaussian means, the input's shape."""
        return self.decoder(z, c_onehot).float()

    def log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        """log p(x|z,c) summed over features, (B,)."""
        return self.likelihood.log_prob(x, decoded)

    def reconstruction(self, decoded: Tensor) -> Tensor:
        """The decoder's mean x̂ (in model space)."""
        return self.likelihood.mean(decoded)

    def prior(self, c: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of p(z|c), broadcastable to (B, d): N(0, I) here."""
        zeros = torch.zeros(1, self.config.latent_dim, device=self.input_shift.device)
        return zeros, zeros

    def kl_to_prior(self, mu: Tensor, logvar: Tensor, c: Tensor | None) -> Tensor:
        """Per-dimension KL(q(z|x,c) || p(z|c)), (B, d). Used by the loss and by the scores."""
        mu_p, logvar_p = self.prior(c, mu.shape[0])
        return gaussian_kl(mu, logvar, mu_p, logvar_p)

    def prior_log_density(self, z: Tensor, c: Tensor | None) -> Tensor:
        """Per-dimension log p(z_i|c), (B, d): what the ``prior`` score reads."""
        mu_p, logvar_p = self.prior(c, z.shape[0])
        return gaussian_log_density(z, mu_p, logvar_p)

    # ----------------------------------------------------------------------------- objective
    def regularizer(self, kl: Tensor, z: Tensor, mu: Tensor, logvar: Tensor,
                    c: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The term added to the reconstruction loss, and its parts for the history.

        kl: per-dimension KL to the prior (B, d). Subclasses override this, and only this, to
        become their paper's objective.
        """
        kl_total = kl.sum(dim=1).mean()
        return kl_total, {"kl": kl_total}

    def forward(self, x: Tensor, c: Tensor | None = None) -> ModelOutput:
        """One pass of the objective on a prepared batch x (B, *input_shape)."""
        c_onehot = self.condition_onehot(c, x.shape[0])
        mu, logvar = self.encode(x, c_onehot)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = -self.log_likelihood(x, self.decode(z, c_onehot)).mean()
        penalty, terms = self.regularizer(self.kl_to_prior(mu, logvar, c), z, mu, logvar, c)
        loss = recon + penalty
        return ModelOutput(loss=loss, terms={"loss": loss, "recon": recon, **terms},
                           z=z, mu=mu, logvar=logvar, c=c)

    # ----------------------------------------------------------------------------- hooks
    def secondary_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the secondary optimiser (a discriminator); none here."""
        return []

    def secondary_loss(self, output: ModelOutput) -> tuple[Tensor, dict[str, Tensor]] | None:
        """Loss of the secondary step, computed after the primary step on its detached output."""
        return None

    def sample(self, n: int, c: Any = None, *, seed: int = 0) -> np.ndarray:
        """``n`` seeded samples in data units; ``c``: condition index (or one per sample, or None
        for uniformly drawn ones). See ``dcvae.models.generation``."""
        return generation.sample(self, n, c, seed=seed)

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or cls.name).strip().splitlines()[0]
