"""Array files of samples: ``.npy``, ``.npz`` and ``.csv``, with an optional condition column.

The samples go through the library's one input rule (:func:`dcvae.data.canonical.canonical_inputs`:
float images stay float, never rounded) and the conditions through its one encoding rule
(:mod:`dcvae.data.conditions`), so a file scores the same through the CLI as its arrays do
through the API. Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import os
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from .arrays import LabelledArray
from .canonical import canonical_inputs
from .conditions import encode_conditions, finite_number
from .errors import DataFileError
from .idx import read_npz_array

__all__ = ["NPY_ERRORS", "load_array_file"]

PathLike = str | os.PathLike[str]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# np.load of a hostile file: a header numpy cannot tokenize, one promising a huge array, a zip
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, MemoryError,
              zipfile.BadZipFile)


# --------------------------------------------------------------------------- arrays


def _split_column(
    path: Path, x: np.ndarray, column: int
) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim != 2:
        raise ValueError(f"{path}: condition_column needs a 2-D table, found shape {x.shape}")
    if not -x.shape[1] <= column < x.shape[1]:
        raise ValueError(
            f"{path}: condition_column {column} out of range for {x.shape[1]} columns"
        )
    column %= x.shape[1]
    return np.delete(x, column, axis=1), x[:, column]


def _load_npz(
    path: Path, condition_column: str | int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except NPY_ERRORS as err:
        raise DataFileError(path, f"not a readable .npz archive ({err})") from err
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataFileError(path, "expected an .npz archive, found a single .npy array")
    with loaded as archive:
        keys = list(archive.files)
    cond_key: str | None = None
    if isinstance(condition_column, str):
        if condition_column not in keys:
            raise ValueError(f"{path}: no array {condition_column!r}; the archive holds {keys}")
        cond_key = condition_column
    else:
        present = [k for k in ("c", "y") if k in keys]
        if len(present) > 1:
            raise ValueError(
                f"{path}: both 'c' and 'y' present; pass condition_column='c' or 'y'"
            )
        cond_key = present[0] if present else None
    data_keys = [k for k in keys if k != cond_key]
    if "x" in keys:
        x_key = "x"
    elif len(data_keys) == 1:
        x_key = data_keys[0]
    else:
        raise ValueError(
            f"{path}: cannot tell which array holds the data; expected key 'x' (or a single "
            f"array), found {keys}"
        )
    x = read_npz_array(path, x_key)
    cond = read_npz_array(path, cond_key) if cond_key is not None else None
    if isinstance(condition_column, int):
        x, cond = _split_column(path, x, condition_column)
    return x, cond


def _load_csv(
    path: Path, condition_column: str | int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), start=1) if any(row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataFileError(path, f"cannot read as CSV ({err})") from err
    if not rows:
        raise ValueError(f"{path}: the CSV file is empty")
    first = rows[0][1]
    # A condition column (given by index) may hold text in any row: it says nothing about a header.
    skip = condition_column % len(first) if isinstance(condition_column, int) and first else None
    cells = [j for j in range(len(first)) if j != skip]
    if len(rows) > 1:
        second = rows[1][1]
        header = any(
            finite_number(first[j]) is None and j < len(second) and finite_number(second[j]) is not None
            for j in cells
        )
    else:
        header = any(finite_number(first[j]) is None for j in cells)
    columns = [c.strip() for c in first] if header else [str(i) for i in range(len(first))]
    body = rows[1:] if header else rows
    if not body:
        raise ValueError(f"{path}: the CSV file has a header but no data rows")
    ncol = len(columns)

    cond_idx: int | None = None
    if isinstance(condition_column, str):
        if not header:
            raise ValueError(
                f"{path}: condition_column={condition_column!r} given, but the CSV has no "
                "header row; pass a column index instead"
            )
        if condition_column not in columns:
            raise ValueError(f"{path}: no column {condition_column!r}; columns are {columns}")
        cond_idx = columns.index(condition_column)
    elif condition_column is not None:
        if not -ncol <= condition_column < ncol:
            raise ValueError(
                f"{path}: condition_column {condition_column} out of range for {ncol} columns"
            )
        cond_idx = condition_column % ncol

    feature_cols = [j for j in range(ncol) if j != cond_idx]
    x = np.empty((len(body), len(feature_cols)), dtype=np.float32)
    cond: list[str] = []
    for r, (lineno, row) in enumerate(body):
        if len(row) != ncol:
            raise ValueError(f"{path}: row {lineno} has {len(row)} columns, expected {ncol}")
        for c, j in enumerate(feature_cols):
            value = finite_number(row[j])
            if value is None:
                raise ValueError(
                    f"{path}: row {lineno}, column {columns[j]!r}: expected a finite number, "
                    f"found {row[j]!r}"
                )
            if abs(value) > _FLOAT32_MAX:
                raise ValueError(
                    f"{path}: row {lineno}, column {columns[j]!r}: {row[j]!r} is too large for float32"
                )
            x[r, c] = value
        if cond_idx is not None:
            if not row[cond_idx].strip():
                raise ValueError(f"{path}: row {lineno}, column {columns[cond_idx]!r}: empty condition")
            cond.append(row[cond_idx].strip())
    # object, not a numpy string array: that would drop trailing NUL characters and merge labels
    return x, (np.asarray(cond, dtype=object) if cond_idx is not None else None)


def load_array_file(
    path: PathLike, *, condition_column: str | int | None = None
) -> tuple[LabelledArray, tuple[str, ...]]:
    """Load a ``.npy``, ``.npz`` or ``.csv`` file of samples, with optional conditions.

    Parameters
    ----------
    path
        ``.npy``: one array, no pickle. ``.npz``: data under ``"x"`` (or the only array),
        conditions under ``"c"`` or ``"y"`` if present. ``.csv``: header row detected; all
        columns but the condition column must be numeric.
    condition_column
        CSV: column name or index of the conditions. ``.npz``: key of the conditions array
        (str) or column index of a 2-D data array (int). ``.npy``: column index of a 2-D
        array.

    Returns
    -------
    tuple
        ``LabelledArray`` of the samples in their canonical form (2-D tables, 3-D ``(n, H, W)``
        or 4-D ``(n, C, H, W)`` images; see :mod:`dcvae.data.canonical`) and the condition
        names (``()`` without).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if condition_column is not None and (
        isinstance(condition_column, bool) or not isinstance(condition_column, str | int | np.integer)
    ):
        raise ValueError(
            f"{path}: condition_column must be a column name (str) or index (int), got "
            f"{type(condition_column).__name__} {condition_column!r}"
        )
    if isinstance(condition_column, np.integer):
        condition_column = int(condition_column)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if isinstance(condition_column, str):
            raise ValueError(f"{path}: a .npy file has no column names; pass an index")
        try:
            x = np.load(path, allow_pickle=False)
        except NPY_ERRORS as err:
            raise DataFileError(path, f"not a readable .npy array ({err})") from err
        if not isinstance(x, np.ndarray):  # np.load opens a zip archive whatever its name
            x.close()
            raise DataFileError(path, "an .npz archive, expected a single .npy array; rename it .npz")
        cond = None
        if condition_column is not None:
            x, cond = _split_column(path, x, condition_column)
    elif suffix == ".npz":
        x, cond = _load_npz(path, condition_column)
    elif suffix == ".csv":
        x, cond = _load_csv(path, condition_column)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .npy, .npz or .csv")

    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{path}: no samples (shape {x.shape})")
    if 0 in x.shape:
        raise ValueError(f"{path}: no features: the data has a zero-sized axis (shape {x.shape})")
    features = canonical_inputs(x, name=str(path))
    if cond is None:
        return LabelledArray(features, np.full(len(features), -1, dtype=np.int64)), ()
    y, names = encode_conditions(cond, len(features), name=f"{path}: conditions")
    return LabelledArray(features, y), names
