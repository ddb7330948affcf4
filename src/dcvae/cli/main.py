"""The ``dcvae`` command group, and how it shows a user's mistakes.

Every error a user can cause (bad data, unknown names, corrupt files, a diverging loss) is printed
as one line without a traceback, with a non-zero exit status.
"""

from __future__ import annotations

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
        try:
            return super().invoke(ctx)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcvae")
def main() -> None:
    """Unsupervised anomaly detection with disentangled conditional VAEs (dCVAE) and baselines."""
