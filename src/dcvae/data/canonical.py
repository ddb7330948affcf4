"""The one input rule of the library: what an array of samples must be, and the form it takes.

Every door in — ``AnomalyDetector.fit`` and its scoring methods, the ``.npy``/``.npz``/``.csv``
readers, the CLI — calls :func:`canonical_inputs`, so the same data scores the same whichever way
it came in. Canonical forms:

- images ``(n, C, H, W)`` (``(n, H, W)`` gains C = 1): uint8 (0-255) kept as uint8; floats must
  lie in [0, 1] and become float32 (never rounded); other integers must lie in 0-255 and become
  uint8; booleans become uint8 0 / 255 (binary images);
- feature vectors ``(n, d)``: uint8 kept as uint8 (pixel intensities, read as 0-255 like images);
  every other number becomes float32; booleans become 0.0 / 1.0.

Everything else is refused with one ``ValueError`` that names the problem (an ``InputError``, a
``ValueError`` that is also a ``TypeError``, for sparse matrices and values that are not numbers,
which scikit-learn reports as type errors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Sample layouts an image may arrive in channels-last, which is refused with a hint.
_CHANNELS = (1, 3)


class InputError(ValueError, TypeError):
    """An input that is not an array of numbers: a sparse matrix, or a value that is not a number."""


def canonical_inputs(x: Any, *, name: str = "X", pixels: bool | None = None) -> np.ndarray:
    """Validate and canonicalise one array of samples; raises naming what is wrong.

    ``pixels`` fixes how feature vectors are read when a fitted model already decided it: True
    (it was fitted on uint8 intensities) reads integers in 0-255 as uint8 and floats in [0, 1] as
    intensities; False (fitted on values) reads uint8 as plain values. None: by dtype, as above.
    So the same numbers score the same whatever integer type holds them."""
    arr = _as_numeric_array(x, name)
    if arr.ndim not in (2, 3, 4):
        hint = " Reshape your data: for one sample, pass x[None]." if arr.ndim == 1 else ""
        raise ValueError(f"{name} must have shape (n, d), (n, H, W) or (n, C, H, W); got "
                         f"{arr.ndim}-D shape {arr.shape}.{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if any(s == 0 for s in arr.shape[1:]):
        raise ValueError(f"{name} has a zero-sized axis: 0 feature(s) (shape={arr.shape}) while a "
                         "minimum of 1 is required.")
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim == 4 and arr.shape[1] not in _CHANNELS and arr.shape[-1] in _CHANNELS:
        raise ValueError(f"{name} has shape {arr.shape}, which looks channels-last (n, H, W, C); "
                         "images are (n, C, H, W): pass x.transpose(0, 3, 1, 2)")
    image = arr.ndim == 4
    if not image and pixels is not None:
        return _features_as_fitted(arr, name, pixels)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255) if image else arr.astype(np.float32)
    lo: float  # the value range: int bounds for integer images, float bounds below
    hi: float
    if np.issubdtype(arr.dtype, np.integer):
        if image:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 255:
                raise ValueError(f"{name}: integer images must lie in 0-255, found {lo}..{hi}")
            return arr.astype(np.uint8)
        return arr.astype(np.float32)
    arr = _finite_float32(arr, name)
    if image:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name}: float images must lie in [0, 1], found {lo:.4g}..{hi:.4g}; "
                             "divide 0-255 images by 255 or pass them as uint8")
    return arr


def _features_as_fitted(arr: np.ndarray, name: str, pixels: bool) -> np.ndarray:
    if not pixels:  # values: uint8 is a number like any other integer
        return arr.astype(np.float32) if arr.dtype.kind in "biu" else _finite_float32(arr, name)
    lo: float  # the value range: int bounds for integer pixels, float bounds below
    hi: float
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: the model was fitted on uint8 pixel intensities (0-255), but "
                             f"{name} holds integers {lo}..{hi}")
        return arr.astype(np.uint8, copy=False)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    arr = _finite_float32(arr, name)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: the model was fitted on uint8 pixel intensities (0-255); float "
                         f"features must then lie in [0, 1], found {lo:.4g}..{hi:.4g}: pass 0-255 "
                         "values as integers")
    return arr


def in_unit_interval(x: np.ndarray) -> bool:
    """Whether canonical inputs lie in [0, 1] (uint8 does: it is read as 0-255 / 255)."""
    return x.dtype == np.uint8 or (float(x.min()) >= 0.0 and float(x.max()) <= 1.0)


def _as_numeric_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # scipy.sparse, without importing it
        raise InputError(f"{name} is a sparse matrix, but dense data is required: pass "
                         f"{name}.toarray()")
    if callable(getattr(x, "detach", None)) and callable(getattr(x, "numpy", None)):  # a torch tensor,
        x = x.detach().cpu().numpy()  # on any device, with or without grad (torch not imported here)
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be read as an array: {err}") from None
    if arr.dtype == object:  # numbers held as Python objects: convert as scikit-learn does
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:  # a dict, None, a word: keep numpy's message
            raise InputError(f"{name} holds a value that is not a number: {err}") from None
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued: Complex data not supported (dtype {arr.dtype})")
    if arr.dtype.kind not in "biuf":  # strings, bytes, datetimes and timedeltas
        raise ValueError(f"{name} must be numeric (uint8 images or floats), got dtype {arr.dtype}")
    return arr


def _finite_float32(arr: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite values (first at index "
                         f"{first})")
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float32, copy=False)
    big = ~np.isfinite(arr)
    if big.any():  # finite float64 values beyond float32's range would silently become infinite
        first = tuple(int(i) for i in np.argwhere(big)[0])
        raise ValueError(f"{name} has {int(big.sum())} values too large for float32 (|x| > 3.4e38; "
                         f"first at index {first})")
    return arr
