"""The detector's own settings (``DetectorConfig``) and every setting's default, read from the
config dataclasses that own it; and the checked plan ``fit`` builds from the arguments."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dcvae.classical import ClassicalModel
from dcvae.config import ConfigError, StrictConfig
from dcvae.models import LIKELIHOODS, VAE, VAEConfig
from dcvae.scoring.family import ScoreRecipe, parse_score
from dcvae.scoring.scores import GIVEN, MARGINAL
from dcvae.scoring.threshold import check_contamination
from dcvae.training import TrainConfig

MODES = (GIVEN, MARGINAL)
#: Model settings read from the data in ``fit`` (or, for ``seed``, from the training settings), never
#: passed in ``params``.
FROM_DATA = ("input_shape", "condition_names", "likelihood", "seed")
#: Model settings that are the detector's own arguments rather than entries of ``params``.
ARCHITECTURE = ("latent_dim", "backbone", "hidden_dims")
TRAINING = tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class DetectorConfig(StrictConfig):
    """How the detector turns a trained model into decisions.

    contamination: expected anomaly fraction in [0, 0.5]; sets the threshold on the validation
        carve of the normal data (0 = the largest validation score).
    validation_fraction: share of the training data held out for early stopping and the threshold.
    anomaly_score: a score name of ``dcvae.scoring.family`` (``"recon"``, ``"typical-elbo"``, ...);
        None: the model's own default (``recon`` for the VAEs, e.g. ``distance`` for ``knn``).
    likelihood: "auto" (Bernoulli for pixels: uint8 data or images in [0, 1]; Gaussian on
        standardised features for other arrays, tables in [0, 1] too), "bernoulli" or "gaussian".
    """

    contamination: float = 0.05
    validation_fraction: float = 0.1
    anomaly_score: str | None = None
    likelihood: str = "auto"

    def __post_init__(self) -> None:
        try:
            check_contamination(self.contamination)
            if self.anomaly_score is not None:
                parse_score(self.anomaly_score)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.likelihood not in ("auto", *LIKELIHOODS):
            raise ConfigError(f"likelihood must be 'auto' or one of {sorted(LIKELIHOODS)}, got "
                              f"{self.likelihood!r}")


def default_settings() -> dict[str, Any]:
    """Every detector setting and its default, read from the config dataclasses that own it."""
    out: dict[str, Any] = {}
    for cls, names in ((VAEConfig, ARCHITECTURE), (TrainConfig, TRAINING),
                       (DetectorConfig, tuple(f.name for f in dataclasses.fields(DetectorConfig)))):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        out.update({name: defaults[name] for name in names})
    out["backbone"] = None  # the model's own: each config class says (VAEConfig mlp, dcvae-prior auto)
    return out


@dataclass(frozen=True)
class Plan:
    """The detector's arguments, checked: what ``fit`` builds and trains."""

    model_class: type[VAE] | type[ClassicalModel]
    model_params: dict[str, Any]
    training: TrainConfig
    detector: DetectorConfig
    recipe: ScoreRecipe

