"""The package's metadata keeps its promises (issue 15, item 10): the license it names is in the
repository, the type hints it declares are shipped, and the command runs as ``python -m dcvae``."""

import subprocess
import sys
from pathlib import Path

import dcvae

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_named_in_the_metadata_is_the_license_file():
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["project"]["classifiers"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_type_hints_are_shipped():
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["dcvae"]
    assert (Path(dcvae.__file__).parent / "py.typed").is_file()


def test_python_dash_m_dcvae_is_the_command():
    result = subprocess.run([sys.executable, "-m", "dcvae", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert dcvae.__version__ in result.stdout
