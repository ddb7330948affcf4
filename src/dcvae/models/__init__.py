"""Every model of the paper, each the shared ELBO (``base.VAE``) plus its own regulariser."""

from dcvae.models.base import VAE, ModelOutput, VAEConfig
from dcvae.models.beta_tcvae import BetaTCVAE, BetaTCVAEConfig
from dcvae.models.dcvae import DCVAE, ConditionalPrior, DCVAEConfig, DCVAEPrior, DCVAEPriorConfig
from dcvae.models.factorvae import RFVAE, FactorVAE, FactorVAEConfig, RFVAEConfig
from dcvae.models.likelihood import (
    LIKELIHOODS,
    BernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    likelihood_for,
)
from dcvae.models.registry import DEFAULT_MODEL, MODELS, all_models, build_model, model_class, register_model
from dcvae.models.vae import CVAE, BetaVAE, BetaVAEConfig

__all__ = [
    "DEFAULT_MODEL", "LIKELIHOODS", "MODELS", "VAE", "CVAE", "DCVAE", "DCVAEPrior", "DCVAEPriorConfig",
    "RFVAE", "BetaTCVAE", "BetaVAE", "FactorVAE",
    "BernoulliLikelihood", "GaussianLikelihood", "Likelihood", "likelihood_for",
    "BetaTCVAEConfig", "BetaVAEConfig", "ConditionalPrior", "DCVAEConfig", "FactorVAEConfig",
    "ModelOutput", "RFVAEConfig", "VAEConfig", "all_models", "build_model", "model_class",
    "register_model",
]
