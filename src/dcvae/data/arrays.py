"""Plain containers for labelled arrays and dataset splits (and the known factors of a split).

Everything in :mod:`dcvae.data` hands back these types so that the models, the
training loop and the CLI see one shape convention, the canonical forms of
:mod:`dcvae.data.canonical`: images ``(n, C, H, W)`` uint8 (or float32 in [0, 1]), tabular data
``(n, d)`` float32 (or uint8), and labels/conditions ``int64 (n,)`` with ``-1`` meaning "no
label".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class LabelledArray:
    """Samples with one integer label (class or condition index) each.

    Attributes
    ----------
    x
        Images ``(n, C, H, W)`` (grayscale has ``C == 1``) or tabular ``(n, d)``, uint8 or
        float32.
    y
        ``int64 (n,)``; ``0..K-1``, or ``-1`` where the source has no labels.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise TypeError(
                f"x and y must be numpy arrays, got {type(x).__name__} and {type(y).__name__}"
            )
        if y.ndim != 1 or y.dtype != np.int64:
            raise ValueError(f"y must be int64 of shape (n,), got {y.dtype} {y.shape}")
        if x.ndim not in (2, 4) or x.dtype not in (np.uint8, np.float32):
            raise ValueError(
                "x must be images (n, C, H, W) or tabular data (n, d), uint8 or float32, "
                f"got {x.dtype} {x.shape}"
            )
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} samples, {len(y)} labels")
        if len(y) and int(y.min()) < -1:
            raise ValueError(f"labels must be >= -1 (-1 = unlabelled), found {int(y.min())}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> LabelledArray:
        """Return the samples picked by a 1-D integer index or boolean mask (a copy)."""
        index = np.asarray(index)
        if index.ndim != 1:
            raise ValueError(f"index must be 1-D, got shape {index.shape}")
        return LabelledArray(self.x[index], self.y[index])


@dataclass(frozen=True, eq=False)
class FactorSplits:
    """The known generative factors of a dataset's samples (dSprites' shape, scale, ...): what a
    disentanglement metric measures codes against.

    Attributes
    ----------
    names
        The factors' names, one per column.
    train, test
        ``int64 (n, k)``: each sample's class index of each factor, row for row with the splits.
    class_factor
        The column that *is* the dataset's class label (dSprites: shape), so the condition of a
        conditional model trained on the classes.
    """

    names: tuple[str, ...]
    train: np.ndarray
    test: np.ndarray
    class_factor: int

    def __post_init__(self) -> None:
        k = len(self.names)
        for split_name, f in (("train", self.train), ("test", self.test)):
            if not isinstance(f, np.ndarray) or f.dtype != np.int64 or f.ndim != 2 or f.shape[1] != k:
                raise ValueError(f"factors.{split_name} must be int64 (n, {k}), got "
                                 f"{getattr(f, 'dtype', type(f).__name__)} {getattr(f, 'shape', '')}")
        if not 0 <= self.class_factor < k:
            raise ValueError(f"class_factor must be in 0..{k - 1}, got {self.class_factor}")


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A named dataset: train and test split plus the human names of its classes.

    Attributes
    ----------
    name
        Registry name, e.g. ``"mnist"``.
    train, test
        The two splits; they share the per-sample shape and dtype.
    class_names
        ``class_names[k]`` is the human name of label ``k``.
    notes
        Sentences the caller should announce to the user (carves, downloads, ...).
    factors
        The samples' known factors, for a dataset that has them (dSprites); None otherwise.
        Their ``class_factor`` column equals the labels ``y`` of both splits.
    """

    name: str
    train: LabelledArray
    test: LabelledArray
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()
    factors: FactorSplits | None = None

    def __post_init__(self) -> None:
        tr, te = self.train.x, self.test.x
        if tr.shape[1:] != te.shape[1:] or tr.dtype != te.dtype:
            raise ValueError(
                f"{self.name}: train and test samples differ: train {tr.dtype} {tr.shape[1:]}, "
                f"test {te.dtype} {te.shape[1:]}"
            )
        k = len(self.class_names)
        for split_name, split in (("train", self.train), ("test", self.test)):
            if k and len(split) and int(split.y.max()) >= k:
                raise ValueError(
                    f"{self.name}: {split_name} label {int(split.y.max())} has no class name "
                    f"({k} class names given)"
                )
        if self.factors is not None:
            for split_name, split, f in (("train", self.train, self.factors.train),
                                         ("test", self.test, self.factors.test)):
                if len(f) != len(split) or not np.array_equal(f[:, self.factors.class_factor], split.y):
                    raise ValueError(f"{self.name}: the {split_name} factors must match the samples row "
                                     f"for row, their class factor being the labels")

    @property
    def is_image(self) -> bool:
        """Whether the samples are images ``(C, H, W)`` rather than feature vectors."""
        return self.train.x.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` for images, ``(d,)`` for tabular data."""
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of named classes (conditions)."""
        return len(self.class_names)
