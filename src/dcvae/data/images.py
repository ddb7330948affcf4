"""A folder of images: one subfolder per condition, or a flat folder.

Choices made here:

* Images come back as ``uint8 (n, C, H, W)``: 16-bit images are scaled with ``round(v / 257)``;
  alpha channels are dropped; grayscale unless some image has colour.
* ``size`` is ``(height, width)``, like the array layout (Pillow itself uses width, height).
* The subfolder names are the conditions, encoded by the library's one rule
  (:mod:`dcvae.data.conditions`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from .arrays import LabelledArray
from .conditions import encode_conditions
from .errors import DataFileError

__all__ = ["ImageFolder", "list_image_files", "load_image_folder", "read_image", "read_image_folder"]

PathLike = str | os.PathLike[str]
T = TypeVar("T")

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap W and H


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
        if p.suffix.lower() in suffixes and _visible(p, directory) and (p.is_file() or p.is_symlink())
    )


def _check_link(path: Path) -> None:
    """An image name that is a link to nothing (or to itself) is refused like an empty file is,
    never skipped without a word."""
    if path.is_symlink() and not path.is_file():
        raise DataFileError(path, "a link whose target is missing or loops; fix or remove it")


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
    _check_link(path)
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


def _folder_layout(root: Path) -> tuple[list[Path], list[str]]:
    """The image files of a folder in load order, and each one's class folder (none if flat)."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    suffixes = _image_suffixes()
    loose = sorted(
        p for p in root.iterdir()
        if (p.is_file() or p.is_symlink()) and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )
    if class_dirs and loose:
        raise ValueError(
            f"{root}: holds both class subfolders ({class_dirs[0].name}, ...) and images "
            f"({loose[0].name}, ...); use one layout: all images in class subfolders, or none"
        )
    files: list[Path] = []
    classes: list[str] = []
    if class_dirs:
        for d in class_dirs:
            found = _images_in(d)
            if not found:
                raise ValueError(f"{d}: class folder holds no images")
            files.extend(found)
            classes.extend([d.name] * len(found))
    elif not loose:
        raise ValueError(f"{root}: no images found (expected images or class subfolders)")
    else:
        files = loose
    return files, classes


def list_image_files(path: PathLike) -> list[Path]:
    """The images ``load_image_folder(path)`` reads, in the order of its samples."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such image folder")
    return _folder_layout(root)[0]


def load_image_folder(
    path: PathLike, *, size: tuple[int, int] | None = None, mode: str = "auto"
) -> tuple[LabelledArray, tuple[str, ...]]:
    """Load a folder of images, one subfolder per class/condition, or a flat folder
    (``read_image_folder`` also gives the file of each sample).

    Parameters
    ----------
    path
        Either ``path/<class>/<images>`` (the subfolder names are the conditions, ordered and
        indexed by :func:`dcvae.data.conditions.encode_conditions`) or images directly in
        ``path`` (then labels are ``-1`` and the names ``()``).
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
    folder = read_image_folder(path, size=size, mode=mode)
    return folder.data, folder.names


@dataclass(frozen=True)
class ImageFolder:
    """A folder's images (``data``), its class names, and the file of each sample, from one listing."""

    data: LabelledArray
    names: tuple[str, ...]
    files: tuple[Path, ...]
    #: With ``skip_unreadable``: the files left out, each with the reason.
    skipped: tuple[DataFileError, ...] = ()


def read_image_folder(path: PathLike, *, size: tuple[int, int] | None = None,
                      mode: str = "auto", skip_unreadable: bool = False) -> ImageFolder:
    """``load_image_folder``, with each sample's file. The folder is listed once, so a file added or
    removed while it is read can never shift a score onto another file's name.

    ``skip_unreadable``: a file that cannot be read (corrupt, truncated, a broken link) is left out
    and listed in ``skipped`` with its reason, instead of failing the whole folder; the folder
    still fails when no image at all can be read. Training refuses such files: scoring skips them.
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

    files, classes = _folder_layout(root)
    skipped: list[DataFileError] = []
    headers, files, classes = _keep_readable(lambda f, _: _header(f), files, classes, skip_unreadable,
                                             skipped, root)
    gray = all(g for _, g in headers) if mode == "auto" else mode == "L"
    if size is None:
        first = headers[0][0]
        for f, (hw, _) in zip(files, headers, strict=True):
            if hw != first:
                raise ValueError(
                    f"images differ in size: {files[0]} is {first[0]}x{first[1]} and {f} is "
                    f"{hw[0]}x{hw[1]} (height x width); resize them with size=(height, width) "
                    "(CLI: --size HxW)"
                )
        size = first
    channels = 1 if gray else 3
    need, have = len(files) * channels * size[0] * size[1], _physical_memory()
    if have is not None and need > have // 2:  # refused before allocating, not killed halfway
        raise ValueError(f"{root}: {len(files)} images of {size[0]}x{size[1]} need {need / 2**30:.3g} GiB, "
                         f"more than half this machine's memory ({have / 2**30:.3g} GiB): resize them "
                         "with size=(height, width) (CLI: --size HxW)")
    x = np.empty((len(files), channels, *size), dtype=np.uint8)

    def decode_into(f: Path, i: int) -> int:
        x[i] = _decode(f, gray, size)
        return i
    kept, files, classes = _keep_readable(decode_into, files, classes, skip_unreadable, skipped, root)
    if len(kept) < len(x):  # the rows of the skipped images go
        x = x[kept]
    if not classes:
        return ImageFolder(LabelledArray(x, np.full(len(files), -1, dtype=np.int64)), (), tuple(files),
                           tuple(skipped))
    y, names = encode_conditions(classes, len(classes), name=f"{root}: class folders")
    return ImageFolder(LabelledArray(x, y), names, tuple(files), tuple(skipped))


def _keep_readable(read: Callable[[Path, int], T], files: list[Path], classes: list[str], skip: bool,
                   skipped: list[DataFileError], root: Path) -> tuple[list[T], list[Path], list[str]]:
    """``read(file, i)`` of every file; with ``skip``, the files it fails on are left out (and their
    errors collected), unless none is left."""
    out: list[T] = []
    kept: list[Path] = []
    kept_classes: list[str] = []
    for i, f in enumerate(files):
        try:
            out.append(read(f, i))
        except DataFileError as err:
            if not skip:
                raise
            skipped.append(err)
            continue
        kept.append(f)
        if classes:
            kept_classes.append(classes[i])
    if not kept:
        raise DataFileError(root, f"none of its {len(files)} images could be read; the first, "
                            f"{skipped[0]}")
    return out, kept, kept_classes


def _physical_memory() -> int | None:
    """This machine's memory in bytes, where the platform says (Linux, macOS)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def read_image(path: PathLike, *, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image file as ``uint8 (C, H, W)``, converted to ``mode`` ("L" or "RGB") and resized to
    ``size`` (height, width) as a folder's images are."""
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    file = Path(path)
    _header(file)  # a damaged or linked-to-nothing file is named here
    return _decode(file, mode == "L", size)
