"""How to train: ``TrainConfig``, the one place its settings and their defaults are written."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcvae.config import ConfigError, StrictConfig
from dcvae.training.device import DEFAULT_DEVICE, check_device_name
from dcvae.training.precision import PRECISIONS

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig(StrictConfig):
    """How to train.

    lr: primary learning rate (encoder, decoder, priors); secondary_lr: the discriminator's.
    patience: epochs without a better validation loss before stopping (0 = never stop early);
    the weights of the best validation epoch are restored at the end.
    precision: "fp32", or "bf16" to run the matrix products in bfloat16 under autocast (CPU and
    GPU); weights, optimiser state and the loss algebra stay float32.
    device: "cpu", "cuda", "cuda:N", "mps", or "auto" (CUDA, else MPS, else CPU); see
    ``dcvae.training.device``.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    secondary_lr: float = 1e-4
    seed: int = 0
    patience: int = 5
    device: str = DEFAULT_DEVICE
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not all(0 < lr < math.inf for lr in (self.lr, self.secondary_lr)):
            raise ConfigError(
                f"learning rates must be finite and > 0, got {self.lr}, {self.secondary_lr}"
            )
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        if not 0 <= self.seed <= MAX_SEED:  # what NumPy and scikit-learn take
            raise ConfigError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")

