"""Find a dataset file on disk (``search``), else fetch it (``download``), and say what happened."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import download as remote
from . import search
from .errors import DatasetNotFoundError

__all__ = ["FileLookup", "locate_file", "not_found_error"]




@dataclass(frozen=True)
class FileLookup:
    """Outcome of looking for one file (given as alternative names).

    Attributes
    ----------
    names
        Accepted names, preferred first.
    path
        Where it was found or downloaded to; None if unavailable.
    searched
        Directories searched, in order.
    status
        Human note: ``"found"``, ``"downloaded and verified"`` or why it is unavailable.
    """

    names: tuple[str, ...]
    path: Path | None
    searched: tuple[Path, ...]
    status: str

    @property
    def found(self) -> bool:
        """Whether the file is available."""
        return self.path is not None


def locate_file(
    folder: str,
    names: str | Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> FileLookup:
    """Find a file on disk, else download it (if allowed and verifiable).

    Network failures and unknown sources are reported in the returned lookup's ``status``
    (the caller decides whether a missing file is fatal); a checksum mismatch raises
    :class:`DataFileError`.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    searched = tuple(search.dataset_search_dirs(folder, data_dir))
    path = search.find_file(folder, names, data_dir)
    if path is not None:
        return FileLookup(names, path, searched, "found")
    if not download:
        return FileLookup(names, None, searched, "not found; download disabled")
    reasons = []
    for name in names:
        try:
            path = remote.download_file(folder, name, data_dir)
        except remote.DownloadUnavailable as err:
            reasons.append(str(err))
            continue
        return FileLookup(names, path, searched, "downloaded and verified")
    return FileLookup(names, None, searched, "not found; " + "; ".join(reasons))


def not_found_error(what: str, lookups: Sequence[FileLookup]) -> DatasetNotFoundError:
    """Build one error that lists every expected file, its status and every searched dir."""
    lines = [f"{what}: required files are missing.", "Files expected:"]
    for lookup in lookups:
        label = " or ".join(lookup.names)
        where = f"found at {lookup.path}" if lookup.path is not None else lookup.status
        lines.append(f"  {label}: {where}")
    searched = search.unique_paths(d for lookup in lookups for d in lookup.searched)
    lines.append("Directories searched, in order:")
    lines.extend(f"  {d}" for d in searched)
    lines.append(
        f"Put the files in one of these directories, or point to them with data_dir=... (CLI: "
        f"--data-dir) or {search.ENV_VAR}."
    )
    missing = tuple(n for lookup in lookups if not lookup.found for n in lookup.names)
    return DatasetNotFoundError("\n".join(lines), missing=missing, searched=tuple(searched))


