"""Evaluation: the protocols, the metrics, the one run function and the provenance of its records.

``dcvae.evaluation.run.run_protocol`` is the single path from a dataset to a record; the
benchmark runner, ``dcvae evaluate`` and ``dcvae demo`` all go through it. Names are imported on
first use, so reading a protocol or a metric does not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FACTORS": "dcvae.evaluation.protocols",
    "PROTOCOLS": "dcvae.evaluation.protocols",
    "factors_split": "dcvae.evaluation.protocols",
    "ProtocolSplit": "dcvae.evaluation.protocols",
    "leave_one_out": "dcvae.evaluation.protocols",
    "make_protocol": "dcvae.evaluation.protocols",
    "one_class": "dcvae.evaluation.protocols",
    "average_precision": "dcvae.evaluation.metrics",
    "detection_report": "dcvae.evaluation.metrics",
    "f1_at_threshold": "dcvae.evaluation.metrics",
    "roc_auc": "dcvae.evaluation.metrics",
    "RunRecord": "dcvae.evaluation.run",
    "RunResult": "dcvae.evaluation.run",
    "RunSpec": "dcvae.evaluation.run",
    "run_protocol": "dcvae.evaluation.run",
    "hardware": "dcvae.evaluation.provenance",
    "source_commit": "dcvae.evaluation.provenance",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dcvae.evaluation' has no attribute {name!r}")
