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
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be numeric (uint8 images or floats), got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
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
    arr = arr.astype(np.float32, copy=False)
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
    values = np.unique(labels)
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


def _as_labels(c: Any, n: int, name: str) -> np.ndarray:
    labels = np.asarray(c)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one condition per sample ({n}), got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError(f"{name} contains NaN or infinite conditions")
        if np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    return labels
