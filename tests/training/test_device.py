"""Device names (dcvae.training.device): checked where settings are read, and where a model is put
on a device, with one clear error instead of a failure deep inside PyTorch (issue 15, item 3)."""

import numpy as np
import pytest
import torch

from dcvae import AnomalyDetector
from dcvae.config import ConfigError
from dcvae.training import TrainConfig
from dcvae.training.device import resolve_device

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize("name", ["gpu", "banana", "meta", "cuda:", "CPU", "", 0])
def test_an_unknown_device_name_is_refused_by_the_config(name):
    with pytest.raises(ConfigError, match="device must be one of"):
        TrainConfig(device=name)


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "mps", "auto"])
def test_every_known_name_is_a_valid_setting_wherever_it_was_written(name):
    """A model trained on a GPU keeps its settings and still loads on a CPU machine."""
    assert TrainConfig(device=name).device == name


def test_auto_and_cpu_resolve_on_every_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}


@NO_CUDA
def test_a_missing_cuda_device_is_named_before_training():
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:0")
    det = AnomalyDetector("vae", epochs=1, device="cuda", progress=False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        det.fit(np.random.default_rng(0).random((40, 6)))
