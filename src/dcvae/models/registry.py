"""Model names → classes. Adding a model is one decorator, never a new branch elsewhere."""

from __future__ import annotations

from difflib import get_close_matches
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dcvae.models.base import VAE

M = TypeVar("M", bound="type[VAE]")
MODELS: dict[str, type[VAE]] = {}


def register_model(cls: M) -> M:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in MODELS:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODELS[cls.name] = cls
    return cls


def model_class(name: str) -> type[VAE]:
    """The class registered as ``name``, or a ValueError listing the names that exist."""
    if name not in MODELS:
        hint = get_close_matches(name, MODELS, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown model {name!r}{suggestion}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(name: str, **config: Any) -> VAE:
    """Instantiate model ``name`` from keyword hyper-parameters, checked like a config file."""
    cls = model_class(name)
    return cls(cls.config_class.from_dict(config, where=name))
