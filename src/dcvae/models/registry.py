"""Model names → classes. Adding a model is one decorator, never a new branch elsewhere."""

from __future__ import annotations

from difflib import get_close_matches
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dcvae.classical import ClassicalModel
    from dcvae.models.base import VAE

M = TypeVar("M", bound="type[VAE]")
MODELS: dict[str, type[VAE]] = {}

#: The model a detector trains when none is named (the API and the CLI): dCVAE-prior, picked by
#: the validation AUC of MNIST and Fashion-MNIST over the SPEC's dCVAE (README, "Benchmark
#: results"). The SPEC's dCVAE stays ``"dcvae"``.
DEFAULT_MODEL = "dcvae-prior"


def register_model(cls: M) -> M:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in MODELS:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODELS[cls.name] = cls
    return cls


def all_models() -> dict[str, type[VAE] | type[ClassicalModel]]:
    """Every model a detector takes by name: the VAEs, then the classical detectors."""
    from dcvae.classical import CLASSICAL

    return {**MODELS, **CLASSICAL}


def model_class(name: str) -> type[VAE] | type[ClassicalModel]:
    """The class registered as ``name`` (a VAE or a classical detector), or a ValueError listing
    the names that exist."""
    known = all_models()
    if name not in known:
        hint = get_close_matches(name, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown model {name!r}{suggestion}; choose one of {sorted(known)}")
    return known[name]


def build_model(name: str, **config: Any) -> VAE:
    """Instantiate model ``name`` from keyword hyper-parameters, checked like a config file."""
    if name not in MODELS:
        model_class(name)  # the error names every model
        raise ValueError(f"build_model builds VAEs; {name!r} is a classical detector: use "
                         "AnomalyDetector(model=...)")
    cls = MODELS[name]
    return cls(cls.config_class.from_dict(config, where=name))
