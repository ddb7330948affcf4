"""The ``dcvae`` command group, and how it shows a user's mistakes.

Every error a user can cause (bad data, unknown names, corrupt files, a diverging loss) is printed
as one line without a traceback, with a non-zero exit status.

The group imports a command's module only when that command runs: ``dcvae --help`` and a scoring
command that needs only onnxruntime never import PyTorch.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import click

from dcvae import __version__

#: Each command: the module that defines it, and the one line ``dcvae --help`` shows for it (a test
#: checks these lines against the commands' own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "benchmark": ("dcvae.cli.benchmark", "Run the grid of a benchmark CONFIG (TOML); finished runs are "
                                         "skipped, so re-run to resume."),
    "demo": ("dcvae.cli.evaluate", "The default dCVAE-prior against the SPEC's dCVAE, a VAE and kNN, "
                                   "leave-one-out on the bundled 8×8 digits (no download)."),
    "evaluate": ("dcvae.cli.evaluate", "Fit on a protocol's normal training data, score its test split, "
                                       "print the metrics."),
    "export": ("dcvae.cli.export", "Export a saved VAE detector's anomaly score (both modes, and its "
                                   "thresholds) to a file that `dcvae score --onnx FILE` or "
                                   "dcvae.export.runtime.OnnxDetector score with."),
    "fit": ("dcvae.cli.models", "Train a detector on normal data and save it as a model directory."),
    "list": ("dcvae.cli.catalogue", "The models, datasets, protocols and scores this version knows."),
    "report": ("dcvae.cli.benchmark", "Write DIRECTORY/report.md and report.html (Table I side by side, "
                                      "figures) from benchmark results."),
    "sample": ("dcvae.cli.models", "Draw samples of a trained VAE (or latent traversals) as one PNG grid."),
    "score": ("dcvae.cli.score", "Score data with a saved model (MODEL_DIR, or an exported --onnx FILE); "
                                 "writes a CSV (higher score = more anomalous)."),
}

#: User errors outside ValueError and FileNotFoundError, by module; looked up only in modules
#: already imported (one that never ran cannot have raised).
_OTHER_USER_ERRORS = {"dcvae.training.trainer": "TrainingDivergedError"}


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions shown as one line: the library's own errors derive from ValueError or
    FileNotFoundError (ConfigError, DataFileError, ModelFileError, NotFittedError, ...)."""
    found: list[type[Exception]] = [ValueError, FileNotFoundError, PermissionError]
    for module, name in _OTHER_USER_ERRORS.items():
        if sys.modules.get(module) is not None:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


class _Group(click.Group):
    """Commands loaded on first use; the library's user-facing errors as ``Error: ...`` and exit
    status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                           list[str]]:
        rest = args[1:]
        if (args and args[0] in COMMANDS and args[0] != "list" and not {"-h", "--help"} & set(rest)
                and not any(a == "--threads" or a.startswith("--threads=") for a in rest)):
            from dcvae.cli.inputs import choose_threads  # before the command's module loads PyTorch

            choose_threads(ctx)
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            importlib.import_module(COMMANDS[cmd_name][0])  # its module adds it to this group
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in sorted(COMMANDS)]  # click's own shortening, without loading the commands
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():  # a warning is one line for the user, not a source location
            warnings.showwarning = _warning_line
            try:
                return super().invoke(ctx)
            except click.ClickException:
                raise
            except Exception as err:
                if isinstance(err, user_errors()):
                    raise click.ClickException(_message(err)) from None
                if isinstance(err, OSError):  # a full disk, a read-only file system, a directory for a file
                    raise click.ClickException(_message(err)) from None
                raise


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
