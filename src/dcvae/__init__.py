"""dcvae: unsupervised anomaly detection with disentangled conditional VAEs and their baselines.

The package reads as the pipeline: ``data`` → ``models`` (with ``nn``) → ``training`` →
``scoring`` → ``io`` → ``detector`` → ``evaluation`` → ``benchmark`` → ``report`` → ``cli``.
The public names below are imported on first use, so ``import dcvae.math`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "AnomalyDetector": "dcvae.detector",
    "NotFittedError": "dcvae.detector",
    "MODELS": "dcvae.models",
    "build_model": "dcvae.models",
    "load_model": "dcvae.io.model_dir",
    "save_model": "dcvae.io.model_dir",
    "SCORES": "dcvae.scoring",
    "anomaly_scores": "dcvae.scoring",
    "TrainConfig": "dcvae.training",
    "Trainer": "dcvae.training",
    "TrainingDivergedError": "dcvae.training",
    "load_dataset": "dcvae.data",
    "RunSpec": "dcvae.evaluation.run",
    "run_protocol": "dcvae.evaluation.run",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dcvae' has no attribute {name!r}")
