"""Disentanglement metrics: MIG, the FactorVAE score, DCI and SAP, as pure functions of codes and factors.

See ``dcvae.disentanglement.metrics`` for what each measures, its source and which codes it expects,
and ``dcvae.disentanglement.measure`` for the rule that measures a trained model on data with
known factors (which codes, which factors, the three measurement sets).
"""

from __future__ import annotations

from dcvae.disentanglement.measure import (
    MEASUREMENT_SETS,
    METRICS,
    measure_disentanglement,
    metric_values,
    posterior_codes,
)
from dcvae.disentanglement.metrics import dci, dci_from_importance, factorvae_score, mig, sap

__all__ = ["MEASUREMENT_SETS", "METRICS", "dci", "dci_from_importance", "factorvae_score",
           "measure_disentanglement", "metric_values", "mig", "posterior_codes", "sap"]
