"""The imports users have keep working, and the top-level names resolve lazily."""

import subprocess
import sys

import dcvae


def test_the_public_imports_of_0_1_still_work():
    from dcvae import AnomalyDetector
    from dcvae.data import load_dataset
    from dcvae.models import build_model
    from dcvae.scoring import anomaly_scores
    from dcvae.training import TensorData, TrainConfig, Trainer

    assert AnomalyDetector is dcvae.AnomalyDetector
    assert callable(load_dataset) and callable(build_model) and callable(anomaly_scores)
    assert Trainer and TrainConfig and TensorData


def test_every_top_level_name_resolves():
    for name in dcvae.__all__:
        assert getattr(dcvae, name) is not None, name


def test_importing_the_package_or_its_math_does_not_load_torch_models():
    code = "import dcvae, dcvae.config, sys; print('dcvae.models' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
