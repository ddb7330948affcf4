"""The ``dcvae`` command: fit, score, sample, export, evaluate, demo, benchmark, report, list.

``main`` is the click group (``dcvae.cli.main``); each command lives in a module of this package
that the group imports when the command is run (``dcvae.cli.main.COMMANDS``).
"""

from dcvae.cli.main import main

__all__ = ["main"]
