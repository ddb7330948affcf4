"""The one condition-encoding rule: condition values → names → indices, at fit and at score time.

A condition *is its name*: ``condition_name`` turns any value into text (integral floats are named
like integers, so 2, 2.0 and "2" are one condition). The names of a training set are ordered
numerically when every name is a number, else as text; a condition's index is its position in
that order. Scoring looks names up in the training conditions. The API, the CLI and the file
readers all go through here, so one label always gets one index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np


def condition_name(value: Any) -> str:
    """The name of one condition value: ``2.0`` → ``"2"``, ``"a"`` → ``"a"``."""
    if (isinstance(value, float | np.floating) and float(value).is_integer()
            and abs(cast(float, value)) < 2.0**53):
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


#: At most this many conditions: a condition is a known source of variation with few values (a
#: class, a site), not an identifier; marginal scoring costs one pass per condition, so 10,000
#: distinct values would run for hours without a word.
MAX_CONDITIONS = 1000


def encode_conditions(c: Any, n: int, *, name: str = "c") -> tuple[np.ndarray, tuple[str, ...]]:
    """Fit time: one condition per sample → (int64 indices, the ordered condition names)."""
    texts = condition_names_of(c, n, name=name)
    unique = set(texts)
    if len(unique) > MAX_CONDITIONS:
        raise ValueError(f"{name} has {len(unique):,} distinct values (at most {MAX_CONDITIONS:,}): a "
                         "condition is a known source of variation with few values, such as a class or "
                         "a site, not an identifier; leave it out or group its values")
    numbers = {t: finite_number(t) for t in unique}
    if all(v is not None for v in numbers.values()):
        names = tuple(sorted(unique, key=lambda t: (numbers[t], t)))
    else:
        names = tuple(sorted(unique))
    index = {t: i for i, t in enumerate(names)}
    return np.fromiter((index[t] for t in texts), dtype=np.int64, count=n), names


def condition_indices(c: Any, n: int, names: Sequence[str], *, name: str = "c") -> np.ndarray:
    """Score time (``given`` mode): one condition per sample → indices of the training ``names``."""
    texts = condition_names_of(c, n, name=name)
    lookup = {v: i for i, v in enumerate(names)}
    unknown = sorted(set(texts) - set(lookup))
    if unknown:
        raise ValueError(
            f"{name} holds condition(s) never seen in training: {unknown[:10]}; the model knows "
            f"{list(names)[:20]}. Leave the conditions out to score in marginal mode (the minimum "
            "over every training condition)."
        )
    return np.fromiter((lookup[t] for t in texts), dtype=np.int64, count=n)


def check_condition_indices(c: Any, n: int, k: int, *, name: str = "c") -> np.ndarray:
    """Conditions already given as indices into ``k`` known names (the protocols' carves)."""
    idx = np.asarray(c)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be {n} integer condition indices, got shape {idx.shape} {idx.dtype}")
    if n and (idx.min() < 0 or idx.max() >= k):
        raise ValueError(f"{name} holds condition indices outside 0..{k - 1}")
    return idx.astype(np.int64)


def condition_names_of(c: Any, n: int, *, name: str = "c") -> list[str]:
    """Shape and missing-value checks, then each sample's condition name."""
    try:
        # a Python list keeps each value's own kind (numpy would turn [10, "9", 2.0] into text)
        labels = np.asarray(c, dtype=object if isinstance(c, list | tuple) else None)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be read as an array of conditions: {err}") from None
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one condition per sample ({n}), got shape {labels.shape}")
    values = labels.tolist()
    if any(isinstance(v, list | tuple | dict | set | np.ndarray) for v in values):
        raise ValueError(f"{name} must be 1-D with one condition per sample ({n}): a condition is one value")
    if any(_missing(v) for v in values):
        raise ValueError(f"{name} contains missing conditions (None, NaN or infinite)")
    texts = [condition_name(v) for v in values]
    if any(not t.strip() for t in texts):
        raise ValueError(f"{name} contains an empty condition name")
    return texts


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and not math.isfinite(value))


def finite_number(text: str) -> float | None:
    """``text`` as a finite number, or None (a condition name, a CSV cell)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
