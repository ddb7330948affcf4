"""Where dataset files are looked for.

Search order for the files of a dataset folder ``<folder>`` (``"mnist"``, ``"fashion-mnist"``,
``"kmnist"``, ``"emnist"``): the explicit ``data_dir`` argument, the directories in the
``DCVAE_DATA`` environment variable (``os.pathsep``-separated), the user cache directory
(``platformdirs.user_cache_dir("dcvae")``), then ``/usr/share/datasets`` (where Debian's
``dataset-*`` packages install). In each root ``R`` both ``R/<folder>/`` and ``R/`` itself are
searched, so a user can point ``data_dir`` straight at a folder of files.

A file counts as present if it exists (hashing 30 MB files on every load would be too slow).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import platformdirs

__all__ = ["ENV_VAR", "SYSTEM_DATA_DIR", "cache_dir", "dataset_search_dirs", "find_file",
           "search_roots", "unique_paths"]

#: Environment variable with extra data roots (``os.pathsep``-separated).
ENV_VAR = "DCVAE_DATA"
#: Where Debian's ``dataset-*`` packages install (e.g. ``dataset-fashion-mnist``).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


def cache_dir() -> Path:
    """Return the per-user cache directory where downloads go by default."""
    return Path(platformdirs.user_cache_dir("dcvae"))


def unique_paths(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the data roots in search order: data_dir, $DCVAE_DATA, cache, system."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR, "")
    roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p.strip())
    roots.append(cache_dir())
    roots.append(SYSTEM_DATA_DIR)
    return unique_paths(roots)


def dataset_search_dirs(
    folder: str, data_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Return every directory searched for the files of ``folder``, in order.

    For each root ``R`` of :func:`search_roots` this is ``R/<folder>`` then ``R``.
    """
    return unique_paths(d for root in search_roots(data_dir) for d in (root / folder, root))


def find_file(
    folder: str, names: str | Sequence[str], data_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """Return the first existing file among ``names`` in the search directories, or None.

    Directories take precedence over names: an earlier directory wins even if it only holds
    a later alternative name.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    for d in dataset_search_dirs(folder, data_dir):
        for name in names:
            candidate = d / name
            if candidate.is_file():
                return candidate
    return None

