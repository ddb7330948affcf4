"""Exceptions raised by :mod:`dcvae.data`.

Two kinds of failure matter to a user: a data file that is present but wrong
(:class:`DataFileError`) and a dataset whose files cannot be found or fetched
(:class:`DatasetNotFoundError`). Each carries one message that names the file or the
directories involved, so the user can act on it without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class DataFileError(ValueError):
    """A data file exists but its content is not what it should be.

    Parameters
    ----------
    path
        The offending file (or URL of a download).
    problem
        What is wrong, ideally "expected ..., found ...".
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type[DataFileError], tuple[str, str]]:
        # Keep the exception picklable (multiprocessing) despite the two-argument __init__.
        return (type(self), (self.path, self.problem))


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset were not found in any searched directory.

    Parameters
    ----------
    message
        The full, human-readable explanation (files expected, directories searched,
        download status).
    missing
        The file names that were missing.
    searched
        Every directory that was searched, in order.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[str, ...] = (),
        searched: tuple[Path, ...] = (),
    ) -> None:
        self.missing = tuple(missing)
        self.searched = tuple(searched)
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_not_found, (self.args[0], self.missing, self.searched))


def _rebuild_not_found(
    message: str, missing: tuple[str, ...], searched: tuple[Path, ...]
) -> DatasetNotFoundError:
    """Unpickle a :class:`DatasetNotFoundError` (keyword-only arguments need a helper)."""
    return DatasetNotFoundError(message, missing=missing, searched=searched)
