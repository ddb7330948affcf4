"""Training checkpoints: everything needed to continue a run bit-identically, in one safetensors file.

A checkpoint holds the weights, both optimisers' states, the RNG states, the early-stopping state
(best weights included) and the history. Tensors go in the safetensors body; everything else is
JSON in the file's metadata. One file, written to a temporary sibling and renamed, so a crash
never leaves a half-written checkpoint in place; and nothing in it is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dcvae import __version__
from dcvae.io.atomic import atomic_write
from dcvae.training.history import History

FORMAT = "dcvae.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or was written for another run."""


@dataclass
class TrainingState:
    """The trainer's loop state after ``epoch`` completed epochs."""

    epoch: int
    history: History
    best_loss: float
    waited: int
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor] | None
    optimizers: dict[str, dict[str, Any]]  # name -> torch optimizer state_dict
    rng: dict[str, torch.Tensor]  # name -> generator state (uint8)
    run: dict[str, Any]  # what the run is: model, configs, data fingerprint


def fingerprint(*arrays: torch.Tensor | None) -> str:
    """sha256 over the bytes and shapes of the data a run trains on (so resume checks it)."""
    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        digest.update(str((tuple(array.shape), str(array.dtype))).encode())
        digest.update(array.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _flatten_optimizer(prefix: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]
                       ) -> dict[str, Any]:
    """Tensors of an optimizer state_dict into ``tensors``; the rest returned as JSON data."""
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(path: str | os.PathLike[str], state: TrainingState) -> None:
    """Write ``state`` atomically to ``path`` (a single .safetensors file)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.model.items():
        tensors[f"model/{name}"] = value.detach().cpu().contiguous()
    for name, value in (state.best_model or {}).items():
        tensors[f"best/{name}"] = value.detach().cpu().contiguous()
    for name, value in state.rng.items():
        tensors[f"rng/{name}"] = value.contiguous()
    optimizers = {name: _flatten_optimizer(f"optim/{name}", opt, tensors)
                  for name, opt in state.optimizers.items()}
    meta = {
        "format": FORMAT, "library_version": __version__, "epoch": state.epoch,
        "history": state.history.to_dict(),
        "best_loss": None if state.best_loss == float("inf") else state.best_loss,
        "waited": state.waited, "has_best_model": state.best_model is not None,
        "optimizers": optimizers, "run": state.run,
    }
    text = json.dumps(meta, allow_nan=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"dcvae": text}))


def load_checkpoint(path: str | os.PathLike[str]) -> TrainingState:
    """Read a checkpoint written by ``save_checkpoint``; CheckpointError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} to resume from")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("dcvae")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from None
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a dcvae checkpoint")
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values")
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != FORMAT:
            raise ValueError(f"field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
        if str(meta.get("library_version", "")).split(".")[0] != __version__.split(".")[0]:
            raise ValueError(f"field 'library_version' is {meta.get('library_version')!r}, "
                             f"this is dcvae {__version__}")
        optimizers = {}
        for name, info in meta["optimizers"].items():
            prefix = f"optim/{name}/"
            state: dict[int, dict[str, Any]] = {}
            for key, value in tensors.items():
                if key.startswith(prefix):
                    index, tensor_name = key[len(prefix):].split("/", 1)
                    state.setdefault(int(index), {})[tensor_name] = value
            for index, values in info["scalars"].items():
                state.setdefault(int(index), {}).update(values)
            optimizers[name] = {"state": state, "param_groups": info["param_groups"]}
        best_loss = meta["best_loss"]
        if not isinstance(meta["run"], dict):
            raise ValueError(f"field 'run' must be an object, got {meta['run']!r:.80}")
        for key in ("epoch", "waited"):  # a negative epoch would make a resumed run train forever
            if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 0:
                raise ValueError(f"field {key!r} must be an integer >= 0, got {meta[key]!r}")
        return TrainingState(
            epoch=int(meta["epoch"]), history=History.from_dict(meta["history"]),
            best_loss=float("inf") if best_loss is None else float(best_loss),
            waited=int(meta["waited"]),
            model=_section(tensors, "model/"),
            best_model=_section(tensors, "best/") if meta["has_best_model"] else None,
            optimizers=optimizers, rng=_section(tensors, "rng/"), run=meta["run"],
        )
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as err:
        raise CheckpointError(f"{path}: malformed checkpoint metadata: {err!r}") from None


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
