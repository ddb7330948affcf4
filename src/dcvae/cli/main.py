"""The ``dcvae`` command group, and how it shows a user's mistakes.

Every error a user can cause (bad data, unknown names, corrupt files, a diverging loss) is printed
as one line without a traceback, with a non-zero exit status.
"""

from __future__ import annotations

import warnings
from typing import Any

import click

from dcvae import __version__
from dcvae.config import ConfigError
from dcvae.data import DataFileError, DatasetNotFoundError
from dcvae.detector import NotFittedError
from dcvae.io.model_dir import ModelFileError
from dcvae.training import CheckpointError, TrainingDivergedError

USER_ERRORS = (ValueError, ConfigError, DatasetNotFoundError, DataFileError, ModelFileError,
               CheckpointError, TrainingDivergedError, NotFittedError, FileNotFoundError,
               PermissionError)


class _Group(click.Group):
    """Turns the library's user-facing errors into ``Error: ...`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():  # a warning is one line for the user, not a source location
            warnings.showwarning = _warning_line
            try:
                return super().invoke(ctx)
            except USER_ERRORS as err:
                raise click.ClickException(_message(err)) from None
            except OSError as err:  # a full disk, a read-only file system, a directory for a file
                raise click.ClickException(_message(err)) from None


def _message(err: Exception) -> str:
    """The error in one line; for the operating system's errors, the file and the reason in words
    (``No space left on device``) instead of ``[Errno 28] ...``."""
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        where = err.filename if err.filename is not None else "a file"
        return f"{where}: {err.strerror}"
    return str(err)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcvae")
def main() -> None:
    """Unsupervised anomaly detection with disentangled conditional VAEs (dCVAE) and baselines."""
