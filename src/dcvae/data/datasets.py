"""Benchmark datasets by name: MNIST, Fashion-MNIST, KMNIST, the EMNIST splits, digits, dSprites.

``load_dataset(name)`` looks the name up in :data:`DATASETS` and returns
:class:`~dcvae.data.arrays.DatasetSplits` with uint8 images ``(n, 1, H, W)`` and int64
labels. Files are found (or downloaded and verified) by :mod:`dcvae.data.locate`.

When the official train files of a dataset cannot be had but its official test split is
present, the test split is carved into train/test (stratified, fixed seed, so every run
shares one test set) and a note says so: a smaller benchmark, honestly labelled, rather
than no benchmark or a fake one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from . import dsprites
from .arrays import DatasetSplits, FactorSplits, LabelledArray
from .class_names import (
    DIGITS,
    EMNIST_MERGED,
    FASHION_CLASSES,
    KMNIST_CLASSES,
    LETTERS,
    LOWER,
    UPPER,
    read_emnist_mapping,
    read_kmnist_classmap,
)
from .errors import DataFileError
from .idx import read_idx, read_npz_array
from .locate import FileLookup, locate_file, not_found_error
from .search import find_file
from .split import stratified_split

__all__ = [
    "CARVE_SEED",
    "CARVE_TEST_FRACTION",
    "DATASETS",
    "DatasetSpec",
    "IdxDataset",
    "carve_indices",
    "SplitFiles",
    "load_dataset",
    "stratified_carve",
]

PathLike = str | os.PathLike[str]

#: Fraction of the official test split held out as test when train files are missing.
CARVE_TEST_FRACTION = 0.2
#: Seed of that carve; fixed and independent of any training seed.
CARVE_SEED = 0


# --------------------------------------------------------------------------- carve


def stratified_carve(
    split: LabelledArray, test_fraction: float, seed: int
) -> tuple[LabelledArray, LabelledArray]:
    """Split one labelled array into (train, test), stratified by label, deterministically.

    The split is :func:`dcvae.data.split.stratified_split`: a label that occurs only once goes to
    train; when the rest is too small to put every label on both sides, the split is plain (with
    a warning). Both parts keep the original sample order.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not in (0, 1) or there are fewer than 2 samples.
    """
    train_idx, test_idx = carve_indices(split, test_fraction, seed)
    return split.subset(train_idx), split.subset(test_idx)


def carve_indices(split: LabelledArray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of :func:`stratified_carve`'s train and test parts, for data carried beside the
    samples (a dataset's factors)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(split) < 2:
        raise ValueError(f"cannot carve {len(split)} sample(s) into a non-empty train and test part")
    return stratified_split(split.y, test_size=test_fraction, seed=seed)


# --------------------------------------------------------------------------- specs


class DatasetSpec(Protocol):
    """What the registry holds for each name."""

    @property
    def name(self) -> str:
        """Registry name."""
        ...

    @property
    def description(self) -> str:
        """One line for ``--help`` listings."""
        ...

    @property
    def factor_names(self) -> tuple[str, ...]:
        """The known factors its splits carry (``DatasetSplits.factors``); empty for most."""
        ...

    def load(self, data_dir: PathLike | None, download: bool) -> DatasetSplits:
        """Load the dataset."""
        ...


@dataclass(frozen=True)
class SplitFiles:
    """Accepted file names of one split; each tuple lists alternatives, preferred first."""

    images: tuple[str, ...]
    labels: tuple[str, ...]


def _idx_files(prefix: str) -> SplitFiles:
    """Official IDX gz names (and their gunzipped variants) for a file prefix."""
    return SplitFiles(
        images=(f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"),
        labels=(f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte"),
    )


def _read_file(path: Path) -> np.ndarray:
    """Read an IDX (gz or raw) or official npz file by its suffix."""
    return read_npz_array(path) if path.suffix == ".npz" else read_idx(path)


@dataclass(frozen=True)
class IdxDataset:
    """A dataset distributed as image/label files in the MNIST IDX (or KMNIST npz) format.

    Attributes
    ----------
    name, description
        Registry name and one line for ``--help`` listings.
    folder
        Folder name searched under each data root (see :mod:`dcvae.data.locate`).
    train, test
        Accepted file names of each split.
    class_names
        Official class names; their number fixes the number of classes.
    class_names_file, class_names_reader
        Optional file in the folder whose names take precedence over ``class_names``.
    transpose
        Stored images are transposed (EMNIST): swap the pixel axes to make them upright.
    label_offset
        Subtracted from the stored labels (EMNIST Letters stores 1..26).
    image_shape
        Expected (H, W) of every image.
    """

    name: str
    description: str
    folder: str
    train: SplitFiles
    test: SplitFiles
    class_names: tuple[str, ...]
    class_names_file: str | None = None
    class_names_reader: Callable[[Path], dict[int, str]] | None = None
    transpose: bool = False
    label_offset: int = 0
    image_shape: tuple[int, int] = (28, 28)
    factor_names: ClassVar[tuple[str, ...]] = ()

    def _names(self, data_dir: PathLike | None) -> tuple[str, ...]:
        """Class names from the names file if present, else the built-in official ones."""
        if self.class_names_file is None or self.class_names_reader is None:
            return self.class_names
        path = find_file(self.folder, self.class_names_file, data_dir)
        if path is None:
            return self.class_names
        mapping = self.class_names_reader(path)
        expected = list(range(self.label_offset, self.label_offset + len(self.class_names)))
        if sorted(mapping) != expected:
            raise DataFileError(
                path, f"expected labels {expected[0]}..{expected[-1]} for {self.name}, found "
                f"{len(mapping)} labels {min(mapping, default=None)}..{max(mapping, default=None)}"
            )
        return tuple(mapping[k] for k in expected)

    def _read_split(self, images: Path, labels: Path, k: int) -> LabelledArray:
        """Read, validate and convert one split to uint8 (n, 1, H, W) + int64 labels."""
        x = _read_file(images)
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != self.image_shape:
            h, w = self.image_shape
            raise DataFileError(
                images, f"expected uint8 images of shape (n, {h}, {w}), found {x.dtype} {x.shape}"
            )
        y = _read_file(labels)
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataFileError(
                labels, f"expected 1-D integer labels, found {y.dtype} of shape {y.shape}"
            )
        if len(x) != len(y):
            raise DataFileError(
                labels, f"{len(y):,} labels, but {images.name} holds {len(x):,} images"
            )
        y = y.astype(np.int64) - self.label_offset
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            lo, hi = self.label_offset, self.label_offset + k - 1
            raise DataFileError(
                labels, f"labels must lie in {lo}..{hi} for {self.name}, found "
                f"{int(y.min()) + self.label_offset}..{int(y.max()) + self.label_offset}"
            )
        if self.transpose:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        return LabelledArray(x[:, None], y)

    def load(self, data_dir: PathLike | None = None, download: bool = True) -> DatasetSplits:
        """Load the dataset; carve the test split if the train files are unavailable."""
        names = self._names(data_dir)
        test_img, test_lab = (
            locate_file(self.folder, n, data_dir, download=download)
            for n in (self.test.images, self.test.labels)
        )
        if not (test_img.found and test_lab.found):
            why = "not downloaded, since the test files are missing" if download else None
            train_img, train_lab = (
                _find_only(self.folder, n, data_dir, why)
                for n in (self.train.images, self.train.labels)
            )
            raise not_found_error(
                f"dataset {self.name!r} (folder {self.folder!r})",
                [train_img, train_lab, test_img, test_lab],
            )
        assert test_img.path is not None and test_lab.path is not None
        test = self._read_split(test_img.path, test_lab.path, len(names))
        notes = _download_notes(self.name, [test_img, test_lab])

        train_img = locate_file(self.folder, self.train.images, data_dir, download=download)
        train_lab = (
            locate_file(self.folder, self.train.labels, data_dir, download=download)
            if train_img.found
            else _find_only(
                self.folder, self.train.labels, data_dir,
                "not downloaded, since the train images are missing" if download else None,
            )
        )
        if train_img.path is not None and train_lab.path is not None:
            train = self._read_split(train_img.path, train_lab.path, len(names))
            notes += _download_notes(self.name, [train_img, train_lab])
        else:
            n_test = len(test)
            train, test = stratified_carve(test, CARVE_TEST_FRACTION, CARVE_SEED)
            notes.append(_carve_note(self.name, train_img, train_lab, n_test, train, test))
        return DatasetSplits(self.name, train, test, names, tuple(notes))


def _find_only(
    folder: str, names: tuple[str, ...], data_dir: PathLike | None, why: str | None
) -> FileLookup:
    """Look for a file without downloading; ``why`` replaces the status if not found."""
    lookup = locate_file(folder, names, data_dir, download=False)
    if lookup.found or why is None:
        return lookup
    return replace(lookup, status=f"not found; {why}")


def _download_notes(name: str, lookups: list[FileLookup]) -> list[str]:
    return [
        f"{name}: downloaded {lk.names[0]} to {lk.path} (checksum verified)."
        for lk in lookups
        if lk.status == "downloaded and verified"
    ]


def _carve_note(
    name: str,
    images: FileLookup,
    labels: FileLookup,
    n_test: int,
    train: LabelledArray,
    test: LabelledArray,
) -> str:
    missing = [kind for kind, lk in (("images", images), ("labels", labels)) if not lk.found]
    reasons = (lk.status.removeprefix("not found; ") for lk in (images, labels) if not lk.found)
    why = "; ".join(dict.fromkeys(reasons))
    return (
        f"{name}: official train {' and '.join(missing)} not found ({why}); the official test "
        f"split ({n_test:,} images) was carved into {len(train):,} train / {len(test):,} test, "
        f"stratified by class, seed {CARVE_SEED}."
    )


@dataclass(frozen=True)
class DigitsDataset:
    """scikit-learn's bundled 8x8 handwritten digits (no files, no official split)."""

    name: str = "digits"
    description: str = "scikit-learn's 8x8 digits (1,797 images, carved 70/30)"
    test_fraction: float = 0.3
    seed: int = 0
    factor_names: ClassVar[tuple[str, ...]] = ()

    def load(self, data_dir: PathLike | None = None, download: bool = True) -> DatasetSplits:
        """Load the digits, scale 0..16 to 0..255 (``round(v * 255 / 16)``) and carve them."""
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        full = LabelledArray(x, bunch.target.astype(np.int64))
        train, test = stratified_carve(full, self.test_fraction, self.seed)
        note = (
            f"{self.name}: scikit-learn's digits have no official split; the {len(full):,} "
            f"images were carved into {len(train):,} train / {len(test):,} test, stratified "
            f"by class, seed {self.seed}."
        )
        return DatasetSplits(self.name, train, test, DIGITS, (note,))


@dataclass(frozen=True)
class DSpritesDataset:
    """dSprites by name: a seeded subsample, carved into train and test stratified by shape (the
    class). The whole grid, with every factor, is :func:`dcvae.data.dsprites.load`."""

    name: str = "dsprites"
    description: str = "dSprites: 64x64 sprites of 3 shapes (a seeded 60,000 of 737,280, carved 80/20)"
    subsample: int = 60_000
    test_fraction: float = 0.2
    seed: int = 0
    factor_names: ClassVar[tuple[str, ...]] = dsprites.FACTOR_NAMES

    def load(self, data_dir: PathLike | None = None, download: bool = True) -> DatasetSplits:
        found = find_file("dsprites", dsprites.ORIGINAL_FILE, data_dir)
        sprites = (dsprites.read_original(found, subsample=self.subsample, seed=self.seed) if found
                   else dsprites.generate(subsample=self.subsample, seed=self.seed))
        full = sprites.labelled()
        train_idx, test_idx = carve_indices(full, self.test_fraction, self.seed)
        train, test = full.subset(train_idx), full.subset(test_idx)
        factors = FactorSplits(self.factor_names, sprites.factors[train_idx], sprites.factors[test_idx],
                               class_factor=0)
        source = f"read from {found}" if found else "generated by the published recipe (no original file)"
        note = (f"{self.name}: {len(sprites):,} of the 737,280 combinations (seed {self.seed}), {source}, "
                f"carved into {len(train):,} train / {len(test):,} test by shape")
        return DatasetSplits(self.name, train, test, dsprites.CLASS_NAMES, (note,), factors)


# --------------------------------------------------------------------------- registry


def _emnist(split: str, names: tuple[str, ...], description: str, offset: int = 0) -> IdxDataset:
    return IdxDataset(
        name=f"emnist-{split}",
        description=description,
        folder="emnist",
        train=_idx_files(f"emnist-{split}-train"),
        test=_idx_files(f"emnist-{split}-test"),
        class_names=names,
        class_names_file=f"emnist-{split}-mapping.txt",
        class_names_reader=read_emnist_mapping,
        transpose=True,
        label_offset=offset,
    )


_MNIST_FILES = (_idx_files("train"), _idx_files("t10k"))

_SPECS: tuple[DatasetSpec, ...] = (
    IdxDataset("mnist", "MNIST handwritten digits (60,000 / 10,000)", "mnist",
               *_MNIST_FILES, DIGITS),
    IdxDataset("fmnist", "Fashion-MNIST Zalando articles (60,000 / 10,000)", "fashion-mnist",
               *_MNIST_FILES, FASHION_CLASSES),
    IdxDataset(
        "kmnist",
        "Kuzushiji-MNIST cursive Japanese (60,000 / 10,000)",
        "kmnist",
        train=SplitFiles(
            images=(*_MNIST_FILES[0].images, "kmnist-train-imgs.npz"),
            labels=(*_MNIST_FILES[0].labels, "kmnist-train-labels.npz"),
        ),
        test=SplitFiles(
            images=(*_MNIST_FILES[1].images, "kmnist-test-imgs.npz"),
            labels=(*_MNIST_FILES[1].labels, "kmnist-test-labels.npz"),
        ),
        class_names=KMNIST_CLASSES,
        class_names_file="kmnist_classmap.csv",
        class_names_reader=read_kmnist_classmap,
    ),
    _emnist("byclass", DIGITS + UPPER + LOWER, "EMNIST ByClass: digits and letters, 62"),
    _emnist("bymerge", DIGITS + UPPER + EMNIST_MERGED,
            "EMNIST ByMerge: digits and letters, look-alike cases merged, 47"),
    _emnist("balanced", DIGITS + UPPER + EMNIST_MERGED,
            "EMNIST Balanced: 47 classes, equal counts"),
    _emnist("letters", LETTERS, "EMNIST Letters: 26 case-merged letters", offset=1),
    _emnist("digits", DIGITS, "EMNIST Digits: 10 digits (240,000 / 40,000)"),
    _emnist("mnist", DIGITS, "EMNIST MNIST: 10 digits (60,000 / 10,000)"),
    DigitsDataset(),
    DSpritesDataset(),
)

#: Registry: dataset name -> spec with ``.load(data_dir, download)`` and ``.description``.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def load_dataset(
    name: str, data_dir: PathLike | None = None, *, download: bool = True
) -> DatasetSplits:
    """Load a benchmark dataset by name.

    Parameters
    ----------
    name
        One of :data:`DATASETS` (case-insensitive).
    data_dir
        Searched first; see :mod:`dcvae.data.locate` for the full search order.
    download
        Fetch missing official files (verified by checksum) when possible.

    Raises
    ------
    ValueError
        Unknown name (with the closest known names suggested).
    DatasetNotFoundError
        The official test files are not available.
    DataFileError
        A file is present but malformed.
    """
    key = name.strip().lower()
    spec = DATASETS.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, list(DATASETS), n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(DATASETS)}."
        )
    return spec.load(data_dir, download)
