"""A tiny grid on the bundled digits, shared by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = """
name = "tiny"
scores = ["recon", "elbo", "kl", "typical-elbo"]
save_models = "first-seed"
save_scores = true
[defaults]
epochs = 1
latent_dim = 2
patience = 0
[models.dcvae]
beta = 3.0
[[grid]]
datasets = ["digits"]
classes = [0, 1]
seeds = [0, 1]
models = ["vae", "dcvae", "factorvae"]
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path

