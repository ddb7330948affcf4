"""The user's own data: a folder of images, or an array file (.npy, .npz, .csv).

Both loaders return ``(LabelledArray, condition_names)``. Conditions (classes) are indexed
``0..K-1`` in the order of ``condition_names``; without conditions every label is ``-1`` and
the names are ``()``.

Choices made here:

* Images always come back as ``uint8 (n, C, H, W)``. Float image arrays with values in
  ``[0, 1]`` are converted with ``round(v * 255)``; 16-bit images are scaled with
  ``round(v / 257)``; alpha channels are dropped.
* ``size`` is ``(height, width)``, like the array layout (Pillow itself uses width, height).
* Condition values that are all numbers are ordered numerically, others as strings.
"""

from __future__ import annotations

import csv
import math
import os
import tokenize
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .arrays import LabelledArray
from .errors import DataFileError
from .idx import read_npz_array

__all__ = ["load_array_file", "load_image_folder"]

PathLike = str | os.PathLike[str]

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap W and H
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# np.load of a hostile file: a header numpy cannot tokenize, one promising a huge array, a zip
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, MemoryError,
              zipfile.BadZipFile)


# --------------------------------------------------------------------------- images


def _image_suffixes() -> frozenset[str]:
    """File suffixes Pillow can open."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _images_in(directory: Path) -> list[Path]:
    """Image files under ``directory`` (recursively, hidden entries skipped), sorted."""
    suffixes = _image_suffixes()
    return sorted(
        p for p in directory.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and _visible(p, directory)
    )


def _is_gray(im: Image.Image) -> bool:
    """Whether an opened (not necessarily decoded) image is grayscale."""
    if im.mode in _GRAY_MODES:
        return True
    if im.mode in ("P", "PA"):
        palette = im.getpalette() or []
        rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
        return bool(np.all(rgb == rgb[:, :1]))
    return False


def _header(path: Path) -> tuple[tuple[int, int], bool]:
    """Return ((height, width) after EXIF orientation, is_gray) without decoding pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in _TRANSPOSED_ORIENTATIONS:
                w, h = h, w
            return (h, w), _is_gray(im)
    except _IMAGE_ERRORS as err:
        raise DataFileError(path, f"not a readable image ({err})") from err


def _decode(path: Path, gray: bool, size: tuple[int, int]) -> np.ndarray:
    """Decode one image into uint8 (C, H, W), converted and resized as requested."""
    try:
        with Image.open(path) as opened:
            if opened.mode == "F":  # refused before decoding a (possibly huge) float image
                raise DataFileError(path, "floating-point images are not supported")
            im = ImageOps.exif_transpose(opened)
            if im.mode in _WIDE_MODES:
                wide = np.asarray(im, dtype=np.int64)
                if wide.size and (wide.min() < 0 or wide.max() > 65535):
                    raise DataFileError(
                        path, f"expected 16-bit values 0..65535, found {wide.min()}..{wide.max()}"
                    )
                im = Image.fromarray(np.rint(wide / 257.0).astype(np.uint8))
                if not gray:
                    im = im.convert("RGB")
            else:
                im = im.convert("L" if gray else "RGB")
            h, w = size
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except DataFileError:
        raise
    except _IMAGE_ERRORS as err:
        raise DataFileError(path, f"cannot decode the image ({err})") from err
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _folder_layout(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files of a folder in load order, their class indices and the class names."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    suffixes = _image_suffixes()
    loose = sorted(
        p for p in root.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )
    if class_dirs and loose:
        raise ValueError(
            f"{root}: holds both class subfolders ({class_dirs[0].name}, ...) and images "
            f"({loose[0].name}, ...); use one layout: all images in class subfolders, or none"
        )
    files: list[Path] = []
    labels: list[int] = []
    if class_dirs:
        for k, d in enumerate(class_dirs):
            found = _images_in(d)
            if not found:
                raise ValueError(f"{d}: class folder holds no images")
            files.extend(found)
            labels.extend([k] * len(found))
        names = tuple(d.name for d in class_dirs)
    else:
        if not loose:
            raise ValueError(f"{root}: no images found (expected images or class subfolders)")
        files, labels, names = loose, [-1] * len(loose), ()
    return files, labels, names


def list_image_files(path: PathLike) -> list[Path]:
    """The images ``load_image_folder(path)`` reads, in the order of its samples."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such image folder")
    return _folder_layout(root)[0]


def load_image_folder(
    path: PathLike, *, size: tuple[int, int] | None = None, mode: str = "auto"
) -> tuple[LabelledArray, tuple[str, ...]]:
    """Load a folder of images, one subfolder per class/condition, or a flat folder.

    Parameters
    ----------
    path
        Either ``path/<class>/<images>`` (class names = sorted subfolder names) or images
        directly in ``path`` (then labels are ``-1`` and the names ``()``).
    size
        ``(height, width)`` to resize every image to (bilinear). Required when the images
        differ in size.
    mode
        ``"auto"`` (grayscale if every image is grayscale, else RGB), ``"L"`` or ``"RGB"``.

    Returns
    -------
    tuple
        ``LabelledArray`` with uint8 ``x`` of shape ``(n, C, H, W)``, and the class names.

    Raises
    ------
    ValueError
        Empty folder or class folder, mixed layout, differing sizes without ``size``.
    DataFileError
        An unreadable or corrupt image (named).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such image folder")
    if mode not in ("auto", "L", "RGB"):
        raise ValueError(f"mode must be 'auto', 'L' or 'RGB', got {mode!r}")
    if size is not None:
        if len(size) != 2 or not all(isinstance(s, int | np.integer) and s > 0 for s in size):
            raise ValueError(f"size must be (height, width) with positive ints, got {size!r}")
        size = (int(size[0]), int(size[1]))

    files, labels, names = _folder_layout(root)
    headers = [_header(f) for f in files]
    gray = all(g for _, g in headers) if mode == "auto" else mode == "L"
    if size is None:
        first = headers[0][0]
        for f, (hw, _) in zip(files, headers, strict=True):
            if hw != first:
                raise ValueError(
                    f"images differ in size: {files[0]} is {first[0]}x{first[1]} and {f} is "
                    f"{hw[0]}x{hw[1]} (height x width); pass size=(height, width) to resize them"
                )
        size = first
    channels = 1 if gray else 3
    x = np.empty((len(files), channels, *size), dtype=np.uint8)
    for i, f in enumerate(files):
        x[i] = _decode(f, gray, size)
    return LabelledArray(x, np.asarray(labels, dtype=np.int64)), names


# --------------------------------------------------------------------------- arrays


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _encode_conditions(values: Sequence[object]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map condition values to indices 0..K-1; numbers order numerically, else as strings.

    Integral floats are named like integers (``2.0`` -> ``"2"``), e.g. for a condition column
    taken from a float array.
    """
    texts = [
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip() for v in values
    ]
    uniq = set(texts)
    numeric = {t: _as_number(t) for t in uniq}
    if all(v is not None for v in numeric.values()):
        names = tuple(sorted(uniq, key=lambda t: (numeric[t], t)))
    else:
        names = tuple(sorted(uniq))
    index = {name: i for i, name in enumerate(names)}
    return np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts)), names


def _check_finite(path: Path, x: np.ndarray) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{path}: {int(bad.sum())} non-finite value(s), first at index {where} (NaN, infinite, "
            "or beyond float32's range)"
        )


def _to_features(path: Path, x: np.ndarray) -> np.ndarray:
    """Turn a loaded array into tabular float32 (n, d) or uint8 images (n, C, H, W)."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected a numeric array, found dtype {x.dtype}")
    if x.ndim == 2:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
            x = x.astype(np.float32)
        _check_finite(path, x)
        return x
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            raise ValueError(
                f"{path}: shape {x.shape} looks channels-last (n, H, W, C); expected "
                "(n, C, H, W), e.g. x.transpose(0, 3, 1, 2)"
            )
    else:
        raise ValueError(
            f"{path}: expected a 2-D (n, d) table or 3-D (n, H, W) / 4-D (n, C, H, W) images, "
            f"found {x.ndim}-D shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        _check_finite(path, x)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{path}: float images must lie in [0, 1], found {x.min()}..{x.max()}; "
                "or store uint8 0..255"
            )
        return np.rint(x * 255.0).astype(np.uint8)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"{path}: integer images must lie in 0..255, found {x.min()}..{x.max()}"
        )
    return x.astype(np.uint8)


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
            _as_number(first[j]) is None and j < len(second) and _as_number(second[j]) is not None
            for j in cells
        )
    else:
        header = any(_as_number(first[j]) is None for j in cells)
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
            value = _as_number(row[j])
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
            cond.append(row[cond_idx])
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
        ``LabelledArray`` (2-D arrays -> float32 ``(n, d)``; 3-D ``(n, H, W)`` / 4-D
        ``(n, C, H, W)`` -> uint8 images) and the condition names (``()`` without).
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
    features = _to_features(path, x)
    if cond is None:
        return LabelledArray(features, np.full(len(features), -1, dtype=np.int64)), ()
    if cond.ndim != 1 or len(cond) != len(features):
        raise ValueError(
            f"{path}: conditions must be 1-D with one value per sample ({len(features)}), "
            f"found shape {cond.shape}"
        )
    if cond.dtype.kind == "f" and not np.isfinite(cond).all():
        where = int(np.flatnonzero(~np.isfinite(cond))[0])
        raise ValueError(f"{path}: non-finite condition {cond[where]} for sample {where}")
    y, names = _encode_conditions(cond.tolist())
    return LabelledArray(features, y), names
