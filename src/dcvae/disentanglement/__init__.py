"""Disentanglement metrics: MIG, the FactorVAE score, DCI and SAP, as pure functions of codes and factors.

See ``dcvae.disentanglement.metrics`` for what each measures, its source and which codes it expects.
"""

from __future__ import annotations

from dcvae.disentanglement.metrics import dci, dci_from_importance, factorvae_score, mig, sap

__all__ = ["dci", "dci_from_importance", "factorvae_score", "mig", "sap"]
