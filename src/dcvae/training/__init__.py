"""Training: one trainer for every model, its config, tensors, history and resumable checkpoints."""

from dcvae.training.checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
from dcvae.training.config import TrainConfig
from dcvae.training.data import TensorData
from dcvae.training.history import COLLAPSE_KL_PER_DIMENSION, History, PosteriorCollapseWarning
from dcvae.training.precision import PRECISIONS, autocast, bf16_is_slow_here
from dcvae.training.trainer import Trainer, TrainingDivergedError

__all__ = ["COLLAPSE_KL_PER_DIMENSION", "PRECISIONS", "CheckpointError", "History",
           "PosteriorCollapseWarning", "TensorData", "TrainConfig", "Trainer", "TrainingDivergedError",
           "TrainingState", "autocast", "bf16_is_slow_here", "load_checkpoint", "save_checkpoint"]
