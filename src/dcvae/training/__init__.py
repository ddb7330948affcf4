"""Training: one trainer for every model, its config, tensors, history and resumable checkpoints.

The names below are imported on first use: ``dcvae.training.device`` (the device-name rule) is
read by the torch-free command-line paths, and importing it must not import the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcvae.training.checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
    from dcvae.training.config import TrainConfig
    from dcvae.training.data import TensorData
    from dcvae.training.history import COLLAPSE_KL_PER_DIMENSION, History, PosteriorCollapseWarning
    from dcvae.training.precision import PRECISIONS, autocast, bf16_is_slow_here
    from dcvae.training.trainer import Trainer, TrainingDivergedError

_EXPORTS = {
    "CheckpointError": "checkpoint", "TrainingState": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint", "TrainConfig": "config", "TensorData": "data",
    "COLLAPSE_KL_PER_DIMENSION": "history", "History": "history", "PosteriorCollapseWarning": "history",
    "PRECISIONS": "precision", "autocast": "precision", "bf16_is_slow_here": "precision",
    "Trainer": "trainer", "TrainingDivergedError": "trainer",
}
__all__ = ["COLLAPSE_KL_PER_DIMENSION", "PRECISIONS", "CheckpointError", "History",
           "PosteriorCollapseWarning", "TensorData", "TrainConfig", "Trainer", "TrainingDivergedError",
           "TrainingState", "autocast", "bf16_is_slow_here", "load_checkpoint", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"dcvae.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dcvae.training' has no attribute {name!r}")
