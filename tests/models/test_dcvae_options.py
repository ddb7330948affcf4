"""dCVAE's options beyond the SPEC: fixed prior means, a separation term, an encoder blind to c."""

import numpy as np
import pytest
import torch

from dcvae.config import ConfigError
from dcvae.models import build_model
from dcvae.models.dcvae import fixed_prior_means
from dcvae.training import TensorData, TrainConfig, Trainer

SHAPE = [1, 8, 8]


def _model(**kw):
    torch.manual_seed(0)
    return build_model("dcvae", input_shape=SHAPE, hidden_dims=[32], latent_dim=4,
                       condition_names=["a", "b", "c"], **kw)


def _data(n=64):
    rng = np.random.default_rng(0)
    return TensorData.from_numpy(rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), np.arange(n) % 3)


def test_fixed_means_sit_on_axes_at_the_radius_and_stay_fixed_in_training():
    means = fixed_prior_means(10, 4, 3.0)
    assert torch.allclose(means.norm(dim=1), torch.full((10,), 3.0))
    assert torch.equal(means[:4], 3.0 * torch.eye(4)) and torch.equal(means[4:8], -3.0 * torch.eye(4))
    distances = torch.cdist(means, means) + 1e9 * torch.eye(10)
    assert distances.min() > 2.2  # held apart: at least 3·√(2 − √2)
    model = _model(prior_means="fixed", prior_radius=3.0)
    before = model.conditional_prior.mean.clone()
    assert "conditional_prior.mean" not in dict(model.named_parameters())  # a buffer, not a weight
    Trainer(model, TrainConfig(epochs=2, batch_size=16), progress=False).fit(_data())
    assert torch.equal(model.conditional_prior.mean, before)
    assert torch.equal(model.conditional_prior.logvar, torch.zeros(3, 4))


def test_a_blind_encoder_gives_one_code_whatever_the_condition():
    model = _model(encoder_condition=False).eval()
    x = model.prepare(_data(5).x)
    onehot = torch.eye(3)
    codes = [model.encode(x, onehot[[k] * 5])[0] for k in range(3)]
    assert torch.equal(codes[0], codes[1]) and torch.equal(codes[0], codes[2])
    each, _ = model.encode_each(x, onehot.repeat(5, 1))
    assert torch.allclose(each.view(5, 3, 4), codes[0][:, None].expand(5, 3, 4))
    seeing = _model().eval()
    assert not torch.equal(seeing.encode(x, onehot[[0] * 5])[0], seeing.encode(x, onehot[[1] * 5])[0])
    assert model.encoder.net[0].in_features == 64 and seeing.encoder.net[0].in_features == 67


def test_the_separation_term_vanishes_once_the_means_are_far_enough_apart():
    model = _model(separation=1.0)
    assert model.prior_separation().item() == pytest.approx((3.0 * 2**0.5) ** 2)  # all means start at 0
    with torch.no_grad():
        model.conditional_prior.mean.copy_(fixed_prior_means(3, 4, 3.0))
    assert model.prior_separation().item() == pytest.approx(0.0, abs=1e-6)
    output = _model(separation=2.0)(model.prepare(_data(8).x), torch.arange(8) % 3)
    assert "separation" in output.terms and output.terms["separation"] > 0


@pytest.mark.parametrize("kw,message", [
    ({"prior_means": "sphere"}, "prior_means must be one of"),
    ({"prior_means": "fixed", "prior_components": 3}, "takes neither prior_components"),
    ({"prior_means": "fixed", "separation": 1.0}, "takes neither prior_components"),
    ({"prior_radius": 0.0}, "prior_radius must be > 0"),
    ({"separation": -1.0}, "separation must be >= 0"),
])
def test_bad_options_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        _model(**kw)


def test_fixed_means_need_room_in_the_latent_space():
    with pytest.raises(ConfigError, match="at most 8 conditions in a 2-dimensional latent space"):
        build_model("dcvae", input_shape=SHAPE, hidden_dims=[8], latent_dim=2, prior_means="fixed",
                    condition_names=[str(i) for i in range(9)])


def test_dcvae_prior_is_eq_16_with_the_options_its_study_chose():
    from dcvae.models import DCVAE, model_class
    from dcvae.scoring.family import default_score

    cls = model_class("dcvae-prior")
    assert issubclass(cls, DCVAE) and cls.regularizer is DCVAE.regularizer  # the same objective
    config = cls.config_class()
    assert (config.prior_means, config.beta, config.encoder_condition) == ("fixed", 1.0, True)
    assert default_score(cls) == "recon+latent+latent-knn" and default_score(model_class("dcvae")) == "recon"
    # the conv backbone on images, the MLP on feature vectors; the SPEC's dCVAE stays on the MLP
    assert cls.config_class(input_shape=(1, 28, 28)).backbone == "conv"
    assert cls.config_class(input_shape=(1, 8, 8)).backbone == "conv"
    assert cls.config_class(input_shape=(1, 3, 3)).backbone == "mlp"  # too small for two stride-2 convs
    assert cls.config_class(input_shape=(20,)).backbone == "mlp"
    assert model_class("dcvae").config_class(input_shape=(1, 28, 28)).backbone == "mlp"
    spec = model_class("dcvae").config_class()
    assert (spec.prior_means, spec.beta) == ("learned", 1.0)  # the SPEC's dCVAE keeps its name
