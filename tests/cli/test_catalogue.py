"""`dcvae list` answers without PyTorch or scikit-learn, and says what the registries say."""

import subprocess
import sys
import textwrap

from dcvae.cli import catalogue
from dcvae.models import DEFAULT_MODEL, all_models
from dcvae.scoring import BASE_SCORES


def test_the_written_out_lines_are_the_registries_own_in_their_order():
    assert list(catalogue.MODELS.items()) == [(name, cls.describe()) for name, cls in all_models().items()]
    assert catalogue.DEFAULT_MODEL == DEFAULT_MODEL
    assert catalogue.BASE_SCORES == BASE_SCORES


def test_list_imports_neither_torch_nor_scikit_learn():
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any import of torch or scikit-learn now fails
        sys.modules["sklearn"] = None
        from dcvae.cli import main
        main(["list"], standalone_mode=False)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "model     dcvae-prior  dCVAE-prior: Eq. 16, fixed separated prior means, conv on images; " \
           "recon + code density + kNN. (the default)" in lines
    assert sum(line.startswith("model ") for line in lines) == len(all_models())
    assert "score     latent" in lines and "dataset   mnist" in lines
