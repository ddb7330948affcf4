"""Measure a trained VAE's disentanglement on data with known factors: the one rule for which codes
and which factors, shared by the ``factors`` protocol of the benchmark grids and by
``benchmarks/disentanglement.py``.

The codes are the encoder's posterior means of the images (see ``dcvae.disentanglement.metrics``
for why means). A conditional model (CVAE, dCVAE, dCVAE-prior) was trained with one factor, the
*condition factor* (dSprites' shape), as its condition c, and encodes each image given its own
value of it: it is told that factor, so scoring it on that factor would flatter it. Hence three
measurement sets:

``remaining``
    every factor but the condition factor, over all images (every model);
``per_class``
    the same factors within each value of the condition factor, the metrics averaged over the
    values (every model: within one shape nobody is told anything);
``all``
    every factor (unconditional models only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dcvae.disentanglement.metrics import dci, factorvae_score, mig, sap

if TYPE_CHECKING:
    from dcvae.detector import AnomalyDetector
    from dcvae.models.base import VAE

#: Every metric a measurement records, by its key in a record.
METRICS: tuple[str, ...] = ("mig", "factorvae", "dci_disentanglement", "dci_completeness",
                            "dci_informativeness", "sap")
#: The measurement sets, in the order a report shows them.
MEASUREMENT_SETS: tuple[str, ...] = ("remaining", "per_class", "all")


def metric_values(codes: np.ndarray, factors: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Every metric of ``METRICS`` for codes ``(n, d)`` and integer factors ``(n, k)``; ``seed``
    drives the FactorVAE score's batches and DCI's train/test split. SAP keeps its own default split
    (seed 0), as the committed ``benchmarks/results/disentanglement.json`` was measured."""
    d = dci(codes, factors, seed=seed)
    return {"mig": mig(codes, factors), "factorvae": factorvae_score(codes, factors, seed=seed),
            "dci_disentanglement": d["disentanglement"], "dci_completeness": d["completeness"],
            "dci_informativeness": d["informativeness"], "sap": sap(codes, factors)}


def posterior_codes(model: VAE, images: np.ndarray, conditions: Sequence[str] | np.ndarray | None
                    ) -> np.ndarray:
    """Posterior means ``float64 (n, latent_dim)`` of ``images``; a conditional model encodes each
    image given its condition (one name per image, looked up in the model's own
    ``condition_names``), an unconditional one takes ``conditions=None``."""
    from dcvae.data.conditions import condition_indices
    from dcvae.scoring import explain

    if model.conditional != (conditions is not None):
        raise ValueError(f"{model.name} is {'' if model.conditional else 'un'}conditional: give "
                         f"{'one condition per image' if model.conditional else 'no conditions'}")
    index = (None if conditions is None
             else condition_indices(conditions, len(images), model.config.condition_names))
    return explain(model, images, index).mu.astype(np.float64)


def measure_disentanglement(detector: AnomalyDetector | VAE, images: np.ndarray, factors: np.ndarray, *,
                            condition_factor: int, condition_names: Sequence[str], seed: int = 0
                            ) -> dict[str, dict[str, float]]:
    """The metrics of every measurement set (``remaining``, ``per_class``, and ``all`` for an
    unconditional model) of a fitted detector (or its VAE) on ``images`` with integer ``factors``
    ``(n, k)``.

    ``condition_factor``: the column of ``factors`` that a conditional model was trained with as
    its condition; ``condition_names[v]`` is the condition name of that factor's value ``v`` (for
    dSprites, the shape names). Raises ValueError for a classical detector (it has no codes) and,
    from the metrics, for too few images or a factor with one value.
    """
    from dcvae.models.base import VAE

    model = detector if isinstance(detector, VAE) else detector.model_
    if not isinstance(model, VAE):
        raise ValueError(f"{model.name} is a classical detector: it has no latent codes to measure")
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != len(images) or not 0 <= condition_factor < factors.shape[1]:
        raise ValueError(f"factors must be (n, k) with one row per image and condition_factor in "
                         f"0..k-1; got {factors.shape} for {len(images)} images, {condition_factor}")
    given = factors[:, condition_factor]
    names = np.asarray(condition_names, dtype=object)[given] if model.conditional else None
    codes = posterior_codes(model, images, names)
    rest = [k for k in range(factors.shape[1]) if k != condition_factor]
    per_class = [metric_values(codes[given == v], factors[given == v][:, rest], seed=seed)
                 for v in np.unique(given)]
    out = {"remaining": metric_values(codes, factors[:, rest], seed=seed),
           "per_class": {m: float(np.mean([p[m] for p in per_class])) for m in METRICS}}
    if not model.conditional:
        out["all"] = metric_values(codes, factors, seed=seed)
    return out
