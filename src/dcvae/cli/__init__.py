"""The ``dcvae`` command: fit, score, export, evaluate, demo, benchmark, report, list.

``main`` is the click group (``dcvae.cli.main``); each command module adds its commands to it.
"""

from dcvae.cli import benchmark, evaluate, export, models  # noqa: F401  (each registers its commands)
from dcvae.cli.main import main

__all__ = ["main"]
