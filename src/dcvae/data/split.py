"""The one stratified split: dataset carves, a protocol's subsample and validation carve, the
detector's validation carve."""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np


def stratified_split(y: np.ndarray, *, seed: int, train_size: int | float | None = None,
                     test_size: int | float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (train, test) of a seeded split of ``len(y)`` samples, stratified by ``y``.

    ``train_size`` / ``test_size`` as scikit-learn's ``train_test_split`` takes them (a count or
    a fraction; give one). A label seen only once cannot be on both sides: it goes to train, and
    a count ``train_size`` then counts it. When the rest is still too small to put every label on
    both sides, the split is a plain seeded one, with a warning.
    """
    from sklearn.model_selection import train_test_split  # here: reading data needs no scikit-learn

    y = np.asarray(y)
    index = np.arange(len(y))
    labels, counts = np.unique(y, return_counts=True)
    rare = np.isin(y, labels[counts < 2])
    common = index[~rare]
    size = train_size
    counted = isinstance(train_size, int | np.integer)
    if rare.any() and counted:
        size = int(cast(int, train_size)) - int(rare.sum())
    try:
        if len(common) < 2 or (counted and cast(int, size) < 1):  # counted: size is a count
            raise ValueError("too few samples to stratify")
        train, test = train_test_split(common, train_size=size, test_size=test_size,
                                       random_state=seed, stratify=y[common])
        train = np.concatenate([train, index[rare]])
    except ValueError:
        warnings.warn(f"{len(y)} samples in {len(labels)} classes are too few for a stratified "
                      "split; splitting without stratification", stacklevel=2)
        train, test = train_test_split(index, train_size=train_size, test_size=test_size,
                                       random_state=seed)
    return np.sort(train), np.sort(test)
