"""``python -m dcvae``: the same command as ``dcvae``."""

from dcvae.cli import main

main()
