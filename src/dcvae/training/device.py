"""The one rule for a device name: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (the best
one this machine has). A name is checked where settings are read; whether the machine has that
device is checked where a model is put on it, so a model trained on a GPU still loads on a CPU."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dcvae.config import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: Where a model trains and scores unless told otherwise.
DEFAULT_DEVICE = "cpu"
_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device_name(name: object) -> None:
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        raise ConfigError(f"device must be one of {list(DEVICE_NAMES)}, got {name!r}")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; a clear error when this machine or PyTorch build lacks it."""
    import torch  # here, not above: checking a name needs no PyTorch (the torch-free CLI paths)

    check_device_name(name)
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if count == 0:
            build = "a CPU-only PyTorch build" if torch.version.cuda is None else "no visible CUDA device"
            raise ConfigError(f"device {name!r}: this machine has no CUDA device ({build}); use "
                              "'cpu' or 'auto'")
        if index >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    if name == "mps" and not has_mps:
        raise ConfigError("device 'mps': Apple's Metal backend is not available here; use 'cpu' or 'auto'")
    return torch.device(name)
