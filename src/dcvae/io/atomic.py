"""Atomic file writes, the one rule for every file the library publishes: model directories,
checkpoints, verified downloads, score files and CSV output.

The bytes go to a temporary sibling, are fsync'd, and only then renamed over the target (and the
rename made durable), so a crash leaves the old file or the new one, never half of one; a failed
write removes its temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` when the block ends without error."""
    with _temporary_sibling(Path(path)) as tmp, open(tmp, "wb") as fh:
        yield fh


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """For writers that need a file name (safetensors, numpy): ``write(tmp)``, then publish it."""
    with _temporary_sibling(Path(path)) as tmp:
        write(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_file(path) as fh:
        fh.write(text.encode("utf-8"))


@contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``; after the block: fsync it, rename it over ``path``, and
    make the rename durable. On an error it is removed and ``path`` is untouched."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; the published file gets the mode a plain open() would give
        # it (the old file's, or 0666 less the umask), so a shared results folder stays readable
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _mode_for(path: Path) -> int:
    """The permission bits of the file being replaced, or those of a new file under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)  # the only portable way to read it: set and restore
        os.umask(umask)
        return 0o666 & ~umask


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
