"""dCVAE's options beyond the SPEC: fixed prior means, a separation term, an encoder blind to c,
the mismatch hinge."""

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


def _two_conditions(**kw):
    torch.manual_seed(0)
    return build_model("dcvae", input_shape=SHAPE, hidden_dims=[32], latent_dim=4, prior_means="fixed",
                       condition_names=["bottom", "top"], **kw)


def _top_or_bottom(n=128):
    """Two conditions told apart by which half of the noise image is brighter."""
    rng = np.random.default_rng(0)
    c = np.arange(n) % 2
    x = rng.integers(0, 120, (n, *SHAPE))
    x[:, 0, :4] += 135 * c[:, None, None]
    x[:, 0, 4:] += 135 * (1 - c)[:, None, None]
    return TensorData.from_numpy(x.astype(np.uint8), c)


def test_the_mismatch_hinge_asks_the_code_under_the_other_condition_to_be_far_from_its_prior():
    model = _two_conditions(mismatch=0.5).eval()
    x, c = model.prepare(_top_or_bottom(6).x), torch.tensor([0, 1, 0, 1, 1, 0])
    torch.manual_seed(1)
    plain = super(type(model), model).forward(x, c)  # Eq. 16 alone, with the same noise
    torch.manual_seed(1)
    output = model(x, c)
    # with two conditions the other one is 1 - c; KL(N(mu, e^lv) || N(m, I)) by its formula
    mu, logvar = model.encode(x, torch.eye(2)[1 - c])
    m = 3.0 * torch.eye(4)[1 - c]
    kl = 0.5 * (logvar.exp() + (mu - m) ** 2 - 1 - logvar).sum(dim=1)
    hinge = torch.relu(9.0 - kl).mean()
    assert output.terms["mismatch"].item() == pytest.approx(hinge.item(), rel=1e-5)
    assert output.loss.item() == pytest.approx(plain.loss.item() + 0.5 * hinge.item(), rel=1e-5)
    assert "mismatch" not in _two_conditions()(x, c).terms  # 0, the default, is Eq. 16


def test_mismatch_training_teaches_the_encoder_to_reject_the_wrong_condition():
    data = _top_or_bottom()
    kl = {}
    for weight in (0.0, 1.0):
        model = _two_conditions(mismatch=weight)
        Trainer(model, TrainConfig(epochs=15, batch_size=32, seed=0), progress=False).fit(data)
        model.eval()
        x, c = model.prepare(data.x), data.c
        with torch.no_grad():
            kl[weight] = [model.kl_to_prior(*model.encode(x, torch.eye(2)[k]), k).sum(dim=1)
                          for k in (c, 1 - c)]  # under the right condition, under the wrong one
    # Eq. 16 alone never shows the encoder a wrong condition: some images land near its prior
    assert kl[0.0][1].min() < 5.0
    # with the hinge every image is far (KL near prior_radius² = 9) from the wrong condition's prior,
    # and still close to its own
    assert kl[1.0][1].min() > 7.0 and kl[1.0][0].mean() < 2.0, (kl[1.0][1].min(), kl[1.0][0].mean())


def test_mismatch_needs_conditions_and_a_weight_of_at_least_zero():
    with pytest.raises(ConfigError, match="mismatch must be >= 0"):
        _model(mismatch=-1.0)
    torch.manual_seed(0)
    lone = build_model("dcvae", input_shape=SHAPE, hidden_dims=[32], latent_dim=4, mismatch=1.0)
    assert "mismatch" not in lone(lone.prepare(_data(4).x), None).terms  # no other condition to draw


def test_with_a_blind_encoder_the_mismatch_hinge_holds_the_one_code_off_the_other_prior():
    model = _two_conditions(mismatch=1.0, encoder_condition=False).eval()
    x, c = model.prepare(_top_or_bottom(6).x), torch.tensor([0, 1, 0, 1, 1, 0])
    output = model(x, c)
    kl_other = model.kl_to_prior(output.mu, output.logvar, 1 - c).sum(dim=1)
    hinge = torch.relu(9.0 - kl_other).mean()
    assert output.terms["mismatch"].item() == pytest.approx(hinge.item(), rel=1e-5)
