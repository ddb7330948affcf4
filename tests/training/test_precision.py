"""Speed paths compute the same function as the plain ones: bf16 autocast, fused Adam."""

import numpy as np
import pytest
import torch

from dcvae import AnomalyDetector
from dcvae.data import load_dataset
from dcvae.evaluation.metrics import roc_auc
from dcvae.models import build_model
from dcvae.scoring import anomaly_scores
from dcvae.training import TensorData, TrainConfig, Trainer
from dcvae.training.trainer import _adam


@pytest.fixture(scope="module")
def digits_detector():
    data = load_dataset("digits")
    normal = data.train.y != 1
    det = AnomalyDetector("dcvae", latent_dim=8, epochs=15, batch_size=64, patience=0, progress=False)
    det.fit(data.train.x[normal], c=data.train.y[normal])
    return det, data


@pytest.mark.parametrize("score", ["recon", "elbo", "kl"])
def test_bf16_scores_match_fp32_scores(digits_detector, score):
    det, data = digits_detector
    fp32 = anomaly_scores(det.model_, data.test.x, score=score)
    bf16 = anomaly_scores(det.model_, data.test.x, score=score, precision="bf16")
    assert bf16.dtype == np.float64 and np.isfinite(bf16).all()
    assert np.abs(bf16 - fp32).max() <= 0.05 * np.abs(fp32).max()
    labels = (data.test.y == 1).astype(int)
    assert abs(roc_auc(labels, bf16) - roc_auc(labels, fp32)) < 0.01


@pytest.mark.filterwarnings("ignore:precision=.bf16. on a CPU")
def test_bf16_training_learns_the_same_task(digits_detector):
    """Same final loss within 1% and the same AUC within 0.02 (digit 4 held out)."""
    _, data = digits_detector
    normal = data.train.y != 4
    labels = (data.test.y == 4).astype(int)
    runs = []
    for precision in ("fp32", "bf16"):
        det = AnomalyDetector("dcvae", latent_dim=8, epochs=15, batch_size=64, patience=0,
                              precision=precision, progress=False)
        det.fit(data.train.x[normal], c=data.train.y[normal])
        runs.append((det.history_.epochs[-1]["train"]["loss"],
                     roc_auc(labels, det.decision_function(data.test.x))))
    (loss32, auc32), (loss16, auc16) = runs
    assert loss16 == pytest.approx(loss32, rel=0.01)
    assert abs(auc32 - auc16) < 0.02


def test_fused_adam_takes_the_same_steps_as_plain_adam():
    torch.manual_seed(0)
    a = build_model("vae", input_shape=[1, 8, 8], hidden_dims=[32, 16], latent_dim=4)
    b = build_model("vae", input_shape=[1, 8, 8], hidden_dims=[32, 16], latent_dim=4)
    b.load_state_dict(a.state_dict())
    fused, plain = _adam(list(a.parameters()), 1e-3), torch.optim.Adam(b.parameters(), lr=1e-3)
    x = torch.rand(64, 1, 8, 8)
    for step in range(20):
        for model, opt in ((a, fused), (b, plain)):
            torch.manual_seed(step)  # the same reparameterisation noise for both
            loss = model(x).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)


def test_slicing_batches_equals_gathering_them():
    """Unshuffled slices and an identity-order gather give the same batches."""
    data = TensorData.from_numpy(np.arange(50 * 4, dtype=np.float32).reshape(50, 4), np.arange(50) % 3)
    sliced = list(data.batches(16))
    gathered = list(data.batches(16, torch.arange(50)))
    for (xs, cs), (xg, cg) in zip(sliced, gathered, strict=True):
        assert torch.equal(xs, xg) and torch.equal(cs, cg)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    model = build_model("vae", input_shape=[4])
    with pytest.raises(ValueError, match="precision"):
        Trainer(model, TrainConfig(precision="half"))
