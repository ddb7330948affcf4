"""Every registered model: builds on both backbones, trains, and reads as its paper's objective."""

import pytest
import torch

from dcvae.config import ConfigError
from dcvae.models import MODELS, build_model, model_class
from dcvae.models.base import VAEConfig

PAPER_MODELS = ["vae", "beta-vae", "cvae", "dcvae", "factorvae", "rfvae", "beta-tcvae"]
# Our own variants, beyond the paper's seven.
OWN_MODELS = ["dcvae-prior"]


def test_registry_holds_every_model_of_the_paper():
    assert sorted(MODELS) == sorted(PAPER_MODELS + OWN_MODELS)


def test_unknown_model_name_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match="did you mean 'dcvae'"):
        model_class("dcvea")


def _batch(shape, n=32, conditions=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, *shape, generator=g) > 0.5).float()
    c = torch.arange(n) % conditions
    return x, c


@pytest.mark.parametrize("name", PAPER_MODELS)
@pytest.mark.parametrize("backbone,shape", [("mlp", (1, 28, 28)), ("conv", (1, 28, 28)),
                                            ("conv", (3, 9, 7)), ("mlp", (5,))])
def test_forward_gives_finite_named_terms_for_any_shape(name, backbone, shape):
    if backbone == "conv" and len(shape) == 1:
        pytest.skip("conv needs images")
    model = build_model(name, input_shape=list(shape), backbone=backbone,
                        condition_names=["a", "b", "c"], hidden_dims=[32, 16], latent_dim=4)
    x, c = _batch(shape)
    out = model(x, c)
    assert out.loss.shape == ()
    assert {"loss", "recon", "kl"} <= set(out.terms)
    assert all(torch.isfinite(v) for v in out.terms.values())
    decoded = model.decode(out.mu, model.condition_onehot(c, len(x)))
    assert decoded.shape == x.shape


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 7)])
def test_the_conv_decoder_scores_the_function_it_trains(shape):
    """Without gradients (scoring) the conv decoder runs its first transposed convolution on
    channels-last input and its last one by phases (odd sizes: output_padding); the result is the
    training path's, up to float rounding, in the input's NCHW order."""
    model = build_model("dcvae-prior", input_shape=list(shape), backbone="conv",
                        condition_names=["a", "b", "c"], hidden_dims=[32, 16], latent_dim=4)
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    onehot = model.condition_onehot(torch.arange(64) % 3, 64)
    layouts = []
    model.decoder.deconv[0].register_forward_pre_hook(
        lambda _, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    trained = model.decode(z, onehot)  # gradients on: the training path
    with torch.no_grad():
        scored = model.decode(z, onehot)
    assert layouts == [False, True]  # the two paths ran
    torch.testing.assert_close(scored, trained.detach(), rtol=1e-5, atol=1e-6)
    assert scored.flatten(1).tolist() == scored.contiguous().flatten(1).tolist()


def test_phases_refuse_a_transposed_convolution_of_another_geometry():
    from dcvae.nn.backbones import transposed_by_phases

    with pytest.raises(ValueError, match="kernel 4, stride 2"):
        transposed_by_phases(torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1), torch.zeros(1, 4, 5, 5))


@pytest.mark.parametrize("backbone,shape", [("mlp", (1, 8, 8)), ("conv", (1, 28, 28)), ("conv", (3, 9, 7))])
def test_an_encoder_split_at_the_condition_computes_its_forward(backbone, shape):
    """Marginal scoring runs the condition-free part once per sample and the rest per condition."""
    model = build_model("cvae", input_shape=list(shape), backbone=backbone,
                        condition_names=["a", "b", "c"], hidden_dims=[32, 16], latent_dim=4)
    x, c = _batch(shape)
    onehot = model.condition_onehot(c, len(x))
    with torch.no_grad():
        split = model.encoder.conditioned(model.encoder.condition_free(x), onehot)
        torch.testing.assert_close(split, model.encoder(x, onehot), rtol=1e-5, atol=1e-6)
        with pytest.raises(RuntimeError):  # a condition of the wrong width is no silent answer
            model.encoder.conditioned(model.encoder.condition_free(x), onehot[:, :2])


def test_conv_backbone_refuses_feature_vectors():
    with pytest.raises(ValueError, match="conv backbone needs images"):
        build_model("vae", input_shape=[10], backbone="conv")


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_loss_falls_on_a_small_batch(name):
    torch.manual_seed(0)
    model = build_model(name, input_shape=[1, 8, 8], condition_names=["a", "b"],
                        hidden_dims=[64, 32], latent_dim=4)
    prototypes = (torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    x, c = prototypes[torch.arange(64) % 4], torch.arange(64) % 2
    primary = [p for p in model.parameters()
               if id(p) not in {id(q) for q in model.secondary_parameters()}]
    opt = torch.optim.Adam(primary, lr=1e-3)
    first = None
    for _ in range(150):
        out = model(x, c)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else (out.loss.item(), out.terms["recon"].item())
    assert out.loss.item() < 0.95 * first[0]
    assert out.terms["recon"].item() < 0.7 * first[1]


@pytest.mark.parametrize("name,weight,term", [("beta-vae", "beta", "kl"), ("dcvae", "beta", "kl")])
def test_beta_weighs_the_kl_term(name, weight, term):
    x, c = _batch((1, 8, 8), conditions=2)
    losses = []
    for value in (1.0, 3.0):
        torch.manual_seed(0)
        model = build_model(name, input_shape=[1, 8, 8], condition_names=["a", "b"],
                            **{weight: value})
        torch.manual_seed(1)
        out = model(x, c)
        losses.append((out.loss - out.terms["recon"]).item() / out.terms[term].item())
    assert losses == pytest.approx([1.0, 3.0], rel=1e-3)


def test_dcvae_kl_goes_to_the_learned_conditional_prior():
    model = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"])
    with torch.no_grad():
        model.conditional_prior.mean[1] += 2.0
    x, c = _batch((1, 8, 8), n=4, conditions=2)
    mu, logvar = model.encode(x, model.condition_onehot(c, 4))
    kl = model.kl_to_prior(mu, logvar, c)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(model.conditional_prior.mean[c],
                                   (0.5 * model.conditional_prior.logvar[c]).exp()))
    torch.testing.assert_close(kl, expected)
    out = model(x, c)
    out.loss.backward()
    assert model.conditional_prior.mean.grad is not None
    assert model.conditional_prior.mean.grad.abs().sum() > 0


def test_dcvae_mixture_prior_with_equal_components_is_the_single_gaussian_prior():
    single = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"], latent_dim=3)
    mixture = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"], latent_dim=3,
                          prior_components=3)
    with torch.no_grad():
        for name, tensor in single.state_dict().items():
            if not name.startswith("conditional_prior"):
                mixture.state_dict()[name].copy_(tensor)
        single.conditional_prior.mean.copy_(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]))
        single.conditional_prior.logvar.copy_(torch.tensor([[0.2, -0.3, 0.0], [1.0, 0.5, -1.0]]))
        mixture.conditional_prior.mean.copy_(single.conditional_prior.mean.unsqueeze(1).expand(-1, 3, -1))
        mixture.conditional_prior.logvar.copy_(single.conditional_prior.logvar.unsqueeze(1).expand(-1, 3, -1))
        mixture.conditional_prior.logits.normal_()  # the weights do not matter between equal parts
    x, c = _batch((1, 8, 8), n=6, conditions=2)
    mu, logvar = single.encode(x, single.condition_onehot(c, 6))
    torch.testing.assert_close(mixture.kl_to_prior(mu, logvar, c), single.kl_to_prior(mu, logvar, c),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mixture.prior_log_density(mu, c), single.prior_log_density(mu, c))
    for got, want in zip(mixture.prior(c, 6), single.prior(c, 6), strict=True):
        torch.testing.assert_close(got, want)


def test_dcvae_mixture_prior_is_a_learned_density_per_condition():
    model = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"], latent_dim=3,
                        prior_components=4)
    prior = model.conditional_prior
    with torch.no_grad():
        prior.logits.normal_()
        prior.mean[1] += 5.0
    x, c = _batch((1, 8, 8), n=6, conditions=2)
    z = torch.randn(6, 3)
    means, logvars, log_weights = prior(c)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=log_weights.transpose(1, 2)),
        torch.distributions.Normal(means.transpose(1, 2), (0.5 * logvars.transpose(1, 2)).exp()))
    torch.testing.assert_close(model.prior_log_density(z, c), reference.log_prob(z))
    mean, logvar = model.prior(c, 6)  # the moments the manifold figures centre on
    torch.testing.assert_close(mean, reference.mean)
    torch.testing.assert_close(logvar.exp(), reference.variance)
    assert (mean[c == 1] > mean[c == 0] + 4.0).all()
    model(x, c).loss.backward()
    for name in ("mean", "logvar", "logits"):
        assert getattr(prior, name).grad.abs().sum() > 0, name


def test_dcvae_prior_components_must_be_positive():
    with pytest.raises(ConfigError, match="prior_components must be >= 1, got 0"):
        build_model("dcvae", input_shape=[1, 8, 8], prior_components=0)


def test_dcvae_conditional_tc_term_is_optional():
    x, c = _batch((1, 8, 8), conditions=2)
    without = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"])
    with_tc = build_model("dcvae", input_shape=[1, 8, 8], condition_names=["a", "b"], gamma=2.0)
    assert "tc" not in without(x, c).terms
    assert "tc" in with_tc(x, c).terms


def test_conditional_model_without_conditions_needs_c_unless_single_condition():
    model = build_model("cvae", input_shape=[1, 8, 8], condition_names=["a", "b"])
    with pytest.raises(ValueError, match="pass c"):
        model(torch.rand(4, 1, 8, 8))
    single = build_model("cvae", input_shape=[1, 8, 8])
    assert torch.isfinite(single(torch.rand(4, 1, 8, 8)).loss)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["factorvae", "rfvae"])
def test_discriminator_learns_to_spot_dependent_latents(name):
    """The secondary step alone: D separates correlated z from its permutation."""
    torch.manual_seed(0)
    model = build_model(name, input_shape=[1, 8, 8], latent_dim=2)
    opt = torch.optim.Adam(model.secondary_parameters(), lr=1e-3)
    base = torch.randn(256, 1)
    z = torch.cat([base, base], dim=1)
    out = model(torch.rand(256, 1, 8, 8))
    out.z = z
    for _ in range(100):  # accuracy 0.98 by then (0.95 at 60 steps)
        loss, terms = model.secondary_loss(out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert terms["discriminator_accuracy"].item() > 0.8
    assert model.discriminator_tc(z).item() > 0.5


def test_rfvae_weights_each_dimension_by_relevance():
    model = build_model("rfvae", input_shape=[1, 8, 8], latent_dim=3)
    with torch.no_grad():
        model.relevance_logits.copy_(torch.tensor([20.0, -20.0, 0.0]))
    kl = torch.ones(1, 3)
    _, terms = model.regularizer(kl, torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), None)
    # lambda = lmax - (lmax - lmin) r: relevant dim 0.1, irrelevant 10, undecided 5.05
    assert terms["weighted_kl"].item() == pytest.approx(0.1 + 10.0 + 5.05, rel=1e-4)


def test_config_refuses_unknown_and_mistyped_fields():
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("vae", input_shape=[1, 8, 8], beta=3.0)
    with pytest.raises(ConfigError, match="latent_dim"):
        build_model("vae", input_shape=[1, 8, 8], latent_dim="16")
    with pytest.raises(ConfigError, match="beta must be >= 0"):
        build_model("dcvae", input_shape=[1, 8, 8], beta=-1.0)


@pytest.mark.parametrize("sizes", [{"hidden_dims": (10**11,)}, {"hidden_dims": (10**30, 4)},
                                   {"latent_dim": 10**9}, {"input_shape": (1, 2000, 2000)}])
def test_a_model_beyond_the_weight_limit_is_refused_before_allocating(sizes):
    with pytest.raises(ConfigError, match=r"the model would have about .* weights"):
        VAEConfig(**sizes)
    assert VAEConfig(hidden_dims=(512, 256), input_shape=(3, 64, 64)).estimated_parameters() == (
        2 * (3 * 64 * 64 * 512 + 512 * 256 + 256 * 16))
