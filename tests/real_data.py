"""The project's real datasets for the tests that need them (skipped, saying why, when absent)."""

import os
from pathlib import Path

import pytest

from dcvae.data import DatasetSplits, load_dataset


def shared_data() -> Path:
    env = os.environ.get("DCVAE_DATA")
    return Path(env.split(os.pathsep)[0]) if env else Path(__file__).parents[2] / "shared" / "data"


def mnist() -> DatasetSplits:
    root = shared_data()
    if not (root / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {root} (set DCVAE_DATA to shared/data)")
    return load_dataset("mnist", root, download=False)
