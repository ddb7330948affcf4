"""The decoder's likelihood p(x|z,c): an object the model holds, as it holds its prior.

Each likelihood says how the decoder's output is read (``log_prob``, ``mean``), which inputs it
accepts (``check_inputs``), and whether the model sees standardised features. Nothing else in the
library asks for a likelihood by name: models, scores and the detector all ask this object.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from dcvae.data.canonical import in_unit_interval
from dcvae.math import LOGVAR_RANGE, bernoulli_log_likelihood, gaussian_log_likelihood


class Likelihood(nn.Module):
    """p(x|z,c) for decoder outputs ``decoded`` of the input's shape."""

    name: ClassVar[str]
    #: Whether the model sees standardised features (statistics of the training data).
    standardises_inputs: ClassVar[bool] = False

    def log_prob(self, x: Tensor, decoded: Tensor) -> Tensor:
        """log p(x|z,c) summed over features, (B,)."""
        raise NotImplementedError

    def mean(self, decoded: Tensor) -> Tensor:
        """The mean x̂ of p(x|z,c), in model space (what Eq. 17 compares x with)."""
        raise NotImplementedError

    @classmethod
    def check_inputs(cls, x: np.ndarray, *, name: str = "X") -> None:
        """Refuse canonical inputs this likelihood cannot model, naming the problem."""


class BernoulliLikelihood(Likelihood):
    """Bernoulli on every pixel, the decoder giving logits: images (or any data) in [0, 1]."""

    name = "bernoulli"

    def log_prob(self, x: Tensor, decoded: Tensor) -> Tensor:
        return bernoulli_log_likelihood(x, decoded)

    def mean(self, decoded: Tensor) -> Tensor:
        return torch.sigmoid(decoded)

    @classmethod
    def check_inputs(cls, x: np.ndarray, *, name: str = "X") -> None:
        if not in_unit_interval(x):
            raise ValueError(f"{name} has values outside [0, 1], which a Bernoulli likelihood cannot "
                             "model; use likelihood='gaussian' for unbounded features")


class GaussianLikelihood(Likelihood):
    """Gaussian with a learned per-feature variance, on standardised features: unbounded data."""

    name = "gaussian"
    standardises_inputs = True

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.logvar = nn.Parameter(torch.zeros(input_shape))

    def log_prob(self, x: Tensor, decoded: Tensor) -> Tensor:
        logvar = self.logvar.clamp(*LOGVAR_RANGE)
        return gaussian_log_likelihood(x, decoded, logvar.expand_as(decoded))

    def mean(self, decoded: Tensor) -> Tensor:
        return decoded


LIKELIHOODS: dict[str, type[Likelihood]] = {"bernoulli": BernoulliLikelihood,
                                            "gaussian": GaussianLikelihood}


def build_likelihood(name: str, input_shape: tuple[int, ...]) -> Likelihood:
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    cls = LIKELIHOODS[name]
    return cls(input_shape) if cls is GaussianLikelihood else cls()


def likelihood_for(x: np.ndarray) -> str:
    """``likelihood="auto"``: Bernoulli for pixels (uint8, or images of floats in [0, 1]), Gaussian
    on standardised features for every other feature vector. Tabular data that happens to lie in
    [0, 1] (min-max scaled) is not pixels: a Bernoulli would refuse the test rows beyond the
    training range, which are the very rows a detector is for."""
    pixels = x.dtype == np.uint8 or (x.ndim == 4 and in_unit_interval(x))
    return "bernoulli" if pixels else "gaussian"
