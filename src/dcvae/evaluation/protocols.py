"""The evaluation protocols of SPEC "Protocols", for any labelled dataset.

- ``leave-one-out``: normal = every class but k, anomaly = class k. Train on the normal training
  images with c = their class; test on the whole test split (label 1 = class k).
- ``one-class``: normal = class k only, anomaly = every other class; c is constant, so CVAE ≡ VAE.

Anomalies never reach training or validation: both are cut from the normal training images only.

``factors`` (:data:`FACTORS`, not a detection protocol, so not in :data:`PROTOCOLS`): for a dataset
with known factors, train on every class with c = the class (the class factor), and measure the
latent codes of the test split against the factors (``dcvae.disentanglement.measure``); no class
is held out and nothing is an anomaly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dcvae.data import DatasetSplits, LabelledArray
from dcvae.data.split import stratified_split


@dataclass(frozen=True)
class ProtocolSplit:
    """Everything one protocol run needs.

    train / validation: normal samples only, ``y`` = condition index into ``condition_names``.
    test: the whole test split; ``test_labels`` is 1 for anomalies, 0 for normal samples.
    """

    protocol: str
    target_class: int
    train: LabelledArray
    validation: LabelledArray
    test: LabelledArray
    test_labels: np.ndarray
    condition_names: tuple[str, ...]


def _carve(normal: LabelledArray, conditions: np.ndarray, names: tuple[str, ...], protocol: str,
           k: int, test: LabelledArray, test_labels: np.ndarray, validation_fraction: float,
           seed: int, train_size: int | None) -> ProtocolSplit:
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    normal = LabelledArray(normal.x, conditions)
    if train_size is not None:
        if train_size < 2:
            raise ValueError(f"train_size must be at least 2, got {train_size}")
        if train_size < len(normal):
            kept, _ = stratified_split(normal.y, train_size=train_size, seed=seed)
            normal = normal.subset(kept)
    fit_idx, val_idx = stratified_split(normal.y, train_size=1.0 - validation_fraction, seed=seed)
    return ProtocolSplit(protocol, k, normal.subset(fit_idx), normal.subset(val_idx), test,
                         test_labels.astype(np.int64), names)


def _check_class(data: DatasetSplits, k: int) -> None:
    n_classes = len(data.class_names)
    if not 0 <= k < n_classes:
        raise ValueError(f"class {k} does not exist in {data.name}: classes are 0..{n_classes - 1}")
    for split_name, split in (("train", data.train), ("test", data.test)):
        if not np.any(split.y == k):
            raise ValueError(f"class {k} ({data.class_names[k]}) has no samples in the {split_name} "
                             f"split of {data.name}")


def leave_one_out(data: DatasetSplits, k: int, *, validation_fraction: float = 0.1, seed: int = 0,
                  train_size: int | None = None) -> ProtocolSplit:
    """Normal = every class but ``k``; conditions = the normal classes, renumbered 0..K-2."""
    _check_class(data, k)
    mask = data.train.y != k
    if not mask.any():
        raise ValueError(f"{data.name}: no normal training samples once class {k} is held out")
    normal = data.train.subset(np.flatnonzero(mask))
    kept_classes = [i for i in range(len(data.class_names)) if i != k]
    renumber = np.full(len(data.class_names), -1, dtype=np.int64)
    renumber[kept_classes] = np.arange(len(kept_classes))
    names = tuple(data.class_names[i] for i in kept_classes)
    return _carve(normal, renumber[normal.y], names, "leave-one-out", k, data.test,
                  data.test.y == k, validation_fraction, seed, train_size)


def one_class(data: DatasetSplits, k: int, *, validation_fraction: float = 0.1, seed: int = 0,
              train_size: int | None = None) -> ProtocolSplit:
    """Normal = class ``k`` only; one constant condition."""
    _check_class(data, k)
    normal = data.train.subset(np.flatnonzero(data.train.y == k))
    return _carve(normal, np.zeros(len(normal), dtype=np.int64), (data.class_names[k],),
                  "one-class", k, data.test, data.test.y != k, validation_fraction, seed, train_size)


#: The protocol that measures disentanglement instead of detection; its runs hold no class out.
FACTORS = "factors"


def factors_split(data: DatasetSplits, *, validation_fraction: float = 0.1, seed: int = 0,
                  train_size: int | None = None) -> ProtocolSplit:
    """Every training image is normal, with c = its class; the test split is measured, not
    detected (``test_labels`` all 0, ``target_class`` -1). Needs a dataset with known factors."""
    if data.factors is None:
        raise ValueError(f"{data.name} has no known factors: the {FACTORS!r} protocol needs a dataset "
                         "that carries them (dsprites)")
    return _carve(data.train, data.train.y, tuple(data.class_names), FACTORS, -1, data.test,
                  np.zeros(len(data.test), dtype=np.int64), validation_fraction, seed, train_size)


PROTOCOLS: dict[str, Callable[..., ProtocolSplit]] = {
    "leave-one-out": leave_one_out,
    "one-class": one_class,
}


def make_protocol(name: str, data: DatasetSplits, k: int, **kwargs: object) -> ProtocolSplit:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name](data, k, **kwargs)
