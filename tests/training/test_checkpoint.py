"""Checkpoints: a killed `dcvae fit` resumes to the very weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dcvae.io.model_dir import data_files
from dcvae.models import build_model
from dcvae.training import TensorData, TrainConfig, Trainer, TrainingDivergedError
from dcvae.training.checkpoint import CheckpointError, load_checkpoint

FIT = ["--epochs", "10", "--batch-size", "32", "--latent-dim", "4", "--patience", "0",
       "--seed", "3", "--quiet", "--model", "factorvae"]


def _images(path: Path, n: int = 1500) -> Path:
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(5, 16, 16))
    x = np.clip(prototypes[np.arange(n) % 5] + rng.integers(-40, 40, size=(n, 16, 16)), 0, 255)
    np.save(path, x.astype(np.uint8))
    return path


def _dcvae(*args: object) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "dcvae.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out


@pytest.mark.slow
def test_sigkilled_fit_resumes_to_bit_identical_weights(tmp_path):
    data = _images(tmp_path / "x.npy")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = _dcvae("fit", "--array", data, *FIT, "--out", whole)  # beside the killed one
    proc = _dcvae("fit", "--array", data, *FIT, "--checkpoint-every", "1", "--out", killed)
    checkpoint = killed / "checkpoint.safetensors"
    deadline = time.monotonic() + 240
    while not (checkpoint.exists() and load_checkpoint(checkpoint).epoch >= 3):
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reached = load_checkpoint(checkpoint).epoch  # the checkpoint left behind is whole
    assert 3 <= reached < 10
    assert not (killed / "config.json").exists()

    _finish(uninterrupted)
    _finish(_dcvae("fit", "--array", data, *FIT, "--resume", "--out", killed))
    expected, resumed = load_file(data_files(whole)[0]), load_file(data_files(killed)[0])
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    history = load_checkpoint(checkpoint).history.epochs
    assert [e["epoch"] for e in history] == list(range(1, 11))  # no epoch lost or repeated


def _data(n=96):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    return TensorData.from_numpy(x, np.arange(n) % 3)


def _trainer(epochs=5, seed=0, name="dcvae"):
    torch.manual_seed(seed)
    model = build_model(name, input_shape=[1, 8, 8], condition_names=["a", "b", "c"],
                        hidden_dims=[16, 8], latent_dim=2)
    return Trainer(model, TrainConfig(epochs=epochs, batch_size=16, seed=seed, patience=0),
                   progress=False)


def test_checkpoints_are_written_every_n_epochs_and_at_the_end(tmp_path, monkeypatch):
    import dcvae.training.trainer as training

    written = []
    save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint",
                        lambda path, state: (written.append(state.epoch), save(path, state)))
    _trainer().fit(_data(), _data(30), checkpoint=tmp_path / "ck.safetensors", checkpoint_every=2)
    assert written == [2, 4, 5]


def test_in_process_resume_matches_uninterrupted_training(tmp_path):
    whole = _trainer()
    whole.fit(_data(), _data(30))
    crashing = _trainer()
    train_epoch = crashing._train_epoch

    def crash_in_epoch_4(data, order, epoch, bar):
        if epoch == 4:
            raise KeyboardInterrupt  # as if the process were stopped mid-epoch
        return train_epoch(data, order, epoch, bar)

    crashing._train_epoch = crash_in_epoch_4
    path = tmp_path / "ck.safetensors"
    with pytest.raises(KeyboardInterrupt):
        crashing.fit(_data(), _data(30), checkpoint=path, checkpoint_every=1)
    assert load_checkpoint(path).epoch == 3
    resumed = _trainer()
    history = resumed.fit(_data(), _data(30), checkpoint=path, resume=True)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4, 5]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_divergence_keeps_the_last_good_checkpoint_loadable(tmp_path):
    trainer = _trainer(epochs=6)
    steps = {"n": 0}
    regularizer = trainer.model.regularizer

    def poisoned(*args, **kwargs):
        steps["n"] += trainer.model.training  # count training steps, not validation passes
        penalty, terms = regularizer(*args, **kwargs)
        if steps["n"] > 2 * 6 + 3:  # 6 steps per epoch: the 4th step of epoch 3 turns NaN
            penalty = penalty * float("nan")
        return penalty, terms

    trainer.model.regularizer = poisoned
    path = tmp_path / "ck.safetensors"
    with pytest.raises(TrainingDivergedError, match="epoch 3, step 4"):
        trainer.fit(_data(), _data(30), checkpoint=path, checkpoint_every=1)
    state = load_checkpoint(path)
    assert state.epoch == 2
    assert all(torch.isfinite(v).all() for v in state.model.values())
    resumed = _trainer(epochs=6)
    resumed.fit(_data(), _data(30), checkpoint=path, resume=True)  # and it resumes cleanly


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    path = tmp_path / "ck.safetensors"
    _trainer(epochs=2).fit(_data(), checkpoint=path)
    with pytest.raises(CheckpointError, match="training data differs"):
        _trainer(epochs=2).fit(_data(n=64), checkpoint=path, resume=True)
    with pytest.raises(CheckpointError, match="train_config differs"):
        _trainer(epochs=3).fit(_data(), checkpoint=path, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _trainer().fit(_data(), checkpoint=tmp_path / "missing.safetensors", resume=True)


@pytest.mark.parametrize("damage,message", [
    ("empty step", "does not fit this model: .*optimiser's 'step' has shape \\(0,\\)"),
    ("wrong shape", "does not fit this model: .*optimiser's 'exp_avg' has shape"),
    ("nan moment", "tensor 'optim/primary/.*/exp_avg' holds NaN or infinite values")])
def test_optimiser_state_that_does_not_fit_its_parameters_is_refused_on_resume(tmp_path, damage,
                                                                               message):
    """torch loads such a state and fails later, deep in Adam's update ('a Tensor with 0 elements
    cannot be converted to Scalar', found by the hostile-file test)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "ck.safetensors"
    _trainer(epochs=2).fit(_data(), checkpoint=path)
    with safe_open(str(path), "pt") as fh:
        names = fh.keys()  # safe_open is not iterable
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in names}
    step = next(k for k in tensors if k.startswith("optim/primary/") and k.endswith("/step"))
    moment = step.replace("/step", "/exp_avg")
    if damage == "empty step":
        tensors[step] = torch.zeros(0)
    elif damage == "wrong shape":
        tensors[moment] = torch.zeros(tensors[moment].numel() + 1)
    else:
        tensors[moment] = torch.full_like(tensors[moment], float("nan"))
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=rf"{path.name}.*{message}"):
        _trainer(epochs=2).fit(_data(), checkpoint=path, resume=True)


def test_a_corrupt_or_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "ck.safetensors"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a dcvae checkpoint"):
        load_checkpoint(path)


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that a loader ran code from a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_planted_as_checkpoint_is_refused_and_never_run(tmp_path, kind):
    import io
    import pickle

    from click.testing import CliRunner

    from dcvae.cli import main

    marker = tmp_path / "pwned"
    if kind == "pickle":
        payload = pickle.dumps(_TouchOnUnpickle(marker))
    else:
        buffer = io.BytesIO()
        torch.save({"model/encoder.net.0.weight": _TouchOnUnpickle(marker)}, buffer)
        payload = buffer.getvalue()
    pickle.loads(pickle.dumps(_TouchOnUnpickle(tmp_path / "control")))  # the payload is live
    assert (tmp_path / "control").exists()
    out = tmp_path / "model"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(out / "checkpoint.safetensors")
    result = CliRunner().invoke(main, ["fit", "--array", str(_images(tmp_path / "x.npy", 60)),
                                       "--epochs", "1", "--quiet", "--resume", "--out", str(out)])
    assert result.exit_code == 1 and "not a readable checkpoint" in result.output
    assert "Traceback" not in result.output
    assert not marker.exists()
