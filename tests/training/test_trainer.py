"""The trainer: determinism, history, early stopping, divergence, the secondary step."""

import numpy as np
import pytest
import torch

from dcvae.models import build_model
from dcvae.training import TensorData, TrainConfig, Trainer, TrainingDivergedError
from dcvae.training import trainer as trainer_module


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(4, 1, 8, 8), dtype=np.uint8)
    y = np.arange(n) % 4
    noise = rng.integers(0, 30, size=(n, 1, 8, 8))
    x = np.clip(prototypes[y].astype(int) + noise, 0, 255).astype(np.uint8)
    return TensorData.from_numpy(x, y)


def _train(name="dcvae", seed=0, epochs=3, **kw):
    torch.manual_seed(seed)
    model = build_model(name, input_shape=[1, 8, 8], condition_names=list("abcd"),
                        hidden_dims=[32, 16], latent_dim=4)
    trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=32, seed=seed, **kw),
                      progress=False)
    history = trainer.fit(_data(), _data(seed=1))
    return model, history


@pytest.mark.parametrize("name", ["dcvae", "factorvae"])
def test_same_seed_same_data_gives_identical_weights(name):
    a, _ = _train(name)
    b, _ = _train(name)
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key
    c, _ = _train(name, seed=1)
    assert not torch.equal(a.state_dict()["decoder.net.0.weight"], c.state_dict()["decoder.net.0.weight"])


def test_history_keeps_every_loss_term_per_epoch():
    _, history = _train("factorvae", epochs=4, patience=0)
    assert len(history.epochs) == 4
    for record in history.epochs:
        assert {"loss", "recon", "kl", "tc", "discriminator"} <= set(record["train"])
        assert {"loss", "recon", "kl", "tc"} <= set(record["validation"])
    assert history.epochs[-1]["train"]["recon"] < history.epochs[0]["train"]["recon"]


def test_discriminator_is_stepped_by_its_own_optimizer():
    torch.manual_seed(0)
    model = build_model("factorvae", input_shape=[1, 8, 8], hidden_dims=[32, 16], latent_dim=4)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=32, secondary_lr=1e-3), progress=False)
    primary_ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not primary_ids & {id(p) for p in model.discriminator.parameters()}
    before = [p.clone() for p in model.discriminator.parameters()]
    trainer.fit(_data())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.discriminator.parameters(),
                                                       strict=True))


def test_early_stopping_stops_and_restores_the_best_epoch():
    # lr so large that validation loss gets worse quickly after the first epochs
    _, history = _train("vae", epochs=50, patience=2, lr=0.05)
    assert history.stopped_early
    assert len(history.epochs) < 50
    losses = [e["validation"]["loss"] for e in history.epochs]
    assert history.best_epoch == int(np.argmin(losses)) + 1


def test_nan_loss_stops_training_naming_epoch_and_step():
    model = build_model("vae", input_shape=[1, 8, 8])
    data = _data(n=64)
    x = data.x.float() / 255
    x[40, 0, 0, 0] = float("nan")  # batch 2 of 32
    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=32, seed=0), progress=False)
    # the seed fixes the shuffle: find the step whose batch holds sample 40
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    step = int((order == 40).nonzero()) // 32 + 1
    with pytest.raises(TrainingDivergedError, match=f"epoch 1, step {step}:"):
        trainer.fit(TensorData(x, data.c))


def test_empty_training_set_is_refused():
    model = build_model("vae", input_shape=[1, 8, 8])
    with pytest.raises(ValueError, match="empty"):
        Trainer(model, progress=False).fit(TensorData(torch.zeros(0, 1, 8, 8)))


def test_train_config_checks_its_values():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="learning rates"):
        TrainConfig(lr=0.0)


def test_outside_a_terminal_progress_is_one_line_per_epoch(capsys):
    """In a log (stderr is no terminal under pytest's capture) a fit of 4 epochs x 7 steps writes
    4 lines, not a line per progress update."""
    model = build_model("vae", input_shape=[1, 8, 8], hidden_dims=[32, 16], latent_dim=4)
    Trainer(model, TrainConfig(epochs=4, batch_size=32), progress=True).fit(_data(), _data(seed=1))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/4" for e in range(1, 5)], err
    assert "\r" not in err and all("validation loss" in line for line in lines)


def _subnormal_moments(optimizer):
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((m.abs() < tiny) & (m != 0)).sum()) for state in optimizer.state.values()
               for key, m in state.items() if key in ("exp_avg", "exp_avg_sq"))


@pytest.mark.slow  # 2 × 1,400 single-image steps
def test_tiny_adam_moments_are_dropped_and_the_weights_stay_bit_identical(monkeypatch):
    """A pixel inked in one image of 700 gets a gradient once an epoch; between two, its weights'
    first moments decay into the subnormal floats (slow arithmetic on x86) unless the trainer
    zeroes them first. Zeroing them must not change what is learned."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(700, 1, 4, 4), dtype=np.uint8)
    x[:, 0, 0, 0] = 0
    x[0, 0, 0, 0] = 255
    data = TensorData.from_numpy(x)

    def fit(drop_every):
        monkeypatch.setattr(trainer_module, "_DROP_EVERY", drop_every)
        torch.manual_seed(0)
        model = build_model("vae", input_shape=[1, 4, 4], hidden_dims=[8], latent_dim=2)
        trainer = Trainer(model, TrainConfig(epochs=2, batch_size=1, seed=0), progress=False)
        trainer.fit(data)
        return model, _subnormal_moments(trainer.optimizer)

    kept, subnormal_kept = fit(10**9)
    dropped, subnormal_dropped = fit(100)
    assert subnormal_kept > 0  # the case this guards against happens here
    assert subnormal_dropped == 0
    for (key, a), b in zip(kept.state_dict().items(), dropped.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
