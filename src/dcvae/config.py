"""Typed, strictly validated configurations.

A configuration is a dataclass; ``from_dict`` refuses unknown keys and wrong types with a message
naming the field, so a hand-edited or foreign ``config.json`` can never build a silently different
model.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T", bound="StrictConfig")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def _check(name: str, expected: Any, value: Any) -> Any:
    """Return ``value`` converted to ``expected`` (JSON lists become tuples), or raise ConfigError."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(expected):
            try:
                return _check(name, option, value)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{name}: {value!r} matches none of {expected}")
    if expected is type(None):
        if value is None:
            return None
        raise ConfigError(f"{name}: expected null, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(expected)
        item_type = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple annotation for {name}")  # a bug in this module
        return tuple(_check(f"{name}[{i}]", item_type, v) for i, v in enumerate(value))
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):  # JSON readers accept NaN and Infinity
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if expected in (str, bool):
        if not isinstance(value, expected):
            raise ConfigError(
                f"{name}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    raise TypeError(f"unsupported annotation {expected} for {name}")  # a bug in this module


@dataclass(frozen=True)
class StrictConfig:
    """Base for configs: JSON round trip with strict checking of keys and types."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(known)}"
            )
        values = {k: _check(f"{where}.{k}", hints[k], v) for k, v in data.items()}
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` applied and checked like ``from_dict``."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
