"""Fixtures for the dcvae.data tests: isolated search roots, no network, tiny IDX files."""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dcvae.data import download, search
from dcvae.data.idx import write_idx


@pytest.fixture
def make_idx(tmp_path: Path) -> Callable[..., Path]:
    """Write an array as an IDX file (gzip'd by default) in tmp_path and return its path."""

    def write(arr: np.ndarray, name: str, *, compress: bool = True, folder: Path | None = None
              ) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_idx(path, arr, compress=compress)

    return write


def _shared_data_dir() -> Path:
    env = os.environ.get("DCVAE_DATA")
    if env:
        return Path(env.split(os.pathsep)[0]).resolve()
    return Path(__file__).parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared real data (MNIST, KMNIST, EMNIST); skip if absent."""
    path = _shared_data_dir()
    if not (path / "mnist").is_dir():
        pytest.skip(f"shared real data not found at {path} (set DCVAE_DATA to shared/data)")
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every download attempt fail like an offline machine, unless a test overrides it."""

    def offline(url: str, timeout: float) -> None:
        raise urllib.error.URLError(f"network disabled in tests ({url})")

    monkeypatch.setattr(download, "open_url", offline)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Empty cache and system roots and no DCVAE_DATA, so only explicit dirs count."""
    roots = {"cache": tmp_path / "cache", "system": tmp_path / "system"}
    monkeypatch.setattr(search, "cache_dir", lambda: roots["cache"])
    monkeypatch.setattr(search, "SYSTEM_DATA_DIR", roots["system"])
    monkeypatch.delenv("DCVAE_DATA", raising=False)
    return roots
