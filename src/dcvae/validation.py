"""Input checks at the library's edges: every bad input gets one error that names the problem.

Canonical forms: images (n, C, H, W) as uint8 (0-255) or float32 in [0, 1]; feature vectors
(n, d) float32 (uint8 kept as uint8). Conditions become int64 indices into a tuple of names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_inputs(x: Any, *, name: str = "X") -> np.ndarray:
    """Validate and canonicalise one input array; raises ValueError naming what is wrong."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be read as an array: {err}") from None
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.dtype.kind not in "iuf":  # bool, object, strings, bytes, datetimes and timedeltas
        raise ValueError(f"{name} must be numeric (uint8 images or floats), got dtype {arr.dtype}")
    if arr.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} must have shape (n, d), (n, H, W) or (n, C, H, W); got {arr.ndim}-D shape "
            f"{arr.shape}" + (" (for one sample, pass x[None])" if arr.ndim == 1 else "")
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if any(s == 0 for s in arr.shape[1:]):
        raise ValueError(f"{name} has a zero-sized axis: shape {arr.shape}")
    if arr.ndim == 3:
        arr = arr[:, None]
    image = arr.ndim == 4
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if image:
            if lo < 0 or hi > 255:
                raise ValueError(f"{name}: integer images must lie in 0-255, found {lo}..{hi}")
            return arr.astype(np.uint8)
        return arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite values (first at index {first})")
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float32, copy=False)
    big = ~np.isfinite(arr)
    if big.any():  # finite float64 values beyond float32's range would silently become infinite
        first = tuple(int(i) for i in np.argwhere(big)[0])
        raise ValueError(f"{name} has {int(big.sum())} values too large for float32 (|x| > 3.4e38; "
                         f"first at index {first})")
    if image:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: float images must lie in [0, 1], found {lo:.4g}..{hi:.4g}; "
                "divide 0-255 images by 255 or pass them as uint8"
            )
    return arr


def in_unit_interval(x: np.ndarray) -> bool:
    return x.dtype == np.uint8 or (float(x.min()) >= 0.0 and float(x.max()) <= 1.0)


def condition_names_from(c: Any, n: int, *, name: str = "c") -> tuple[np.ndarray, tuple[str, ...]]:
    """Fit time: labels of any hashable kind → (indices, sorted names)."""
    labels = _as_labels(c, n, name)
    try:
        values = np.unique(labels)
    except TypeError:  # an object array mixing kinds that do not order: 1 and "a", dicts, ...
        kinds = sorted({type(v).__name__ for v in labels.tolist()})
        raise ValueError(f"{name}: condition values must be of one orderable kind (numbers or "
                         f"strings), got a mix of {kinds}") from None
    names = tuple(str(v) for v in values)
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: two condition values print the same ({names})")
    return np.searchsorted(values, labels).astype(np.int64), names


def condition_indices(c: Any, n: int, names: Sequence[str], *, name: str = "c") -> np.ndarray:
    """Score time (``given`` mode): labels → indices of the training conditions ``names``."""
    labels = _as_labels(c, n, name)
    lookup = {v: i for i, v in enumerate(names)}
    as_text = np.array([str(v) for v in labels])
    unknown = sorted(set(as_text.tolist()) - set(lookup))
    if unknown:
        raise ValueError(
            f"{name} holds condition(s) never seen in training: {unknown[:10]}; the model knows "
            f"{list(names)[:20]}. Omit c to score in marginal mode."
        )
    return np.fromiter((lookup[v] for v in as_text), dtype=np.int64, count=n)


def check_conditions(c: Any, n: int, *, name: str = "c") -> np.ndarray:
    """Shape and missing-value checks only: for models that do not use the condition values."""
    return _as_labels(c, n, name)


def _as_labels(c: Any, n: int, name: str) -> np.ndarray:
    try:
        labels = np.asarray(c)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be read as an array of conditions: {err}") from None
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one condition per sample ({n}), got shape {labels.shape}")
    if labels.dtype == object and any(_missing(v) for v in labels.tolist()):
        raise ValueError(f"{name} contains missing conditions (None, NaN or infinite)")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError(f"{name} contains NaN or infinite conditions")
        # integral floats name the same condition as the integer, where int64 holds them exactly
        if np.all(labels == np.round(labels)) and np.all(np.abs(labels.astype(np.float64)) < 2.0**53):
            labels = labels.astype(np.int64)
    return labels


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and not np.isfinite(value))
