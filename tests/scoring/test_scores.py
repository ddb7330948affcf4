"""Anomaly scores recomputed by hand, deterministic, batch-independent; marginal mode is a minimum."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import multivariate_normal
from torch.distributions import Bernoulli, Normal, kl_divergence

from dcvae.models import build_model
from dcvae.models.base import LOGVAR_RANGE
from dcvae.scoring import SCORES, anomaly_scores, explain, score_table
from dcvae.scoring.latent import LATENT_KNN_K, LatentCodes, fit_latent_gaussians, training_codes

CONDITIONS = ["a", "b", "c"]
SHAPE = [1, 8, 8]


def _model(name="dcvae", seed=0, **kw):
    """A random model; dCVAE's prior r(z|c) gets a different non-standard mean and scale per c."""
    torch.manual_seed(seed)
    kw.setdefault("condition_names", CONDITIONS)
    model = build_model(name, input_shape=kw.pop("input_shape", SHAPE), hidden_dims=[32, 16],
                        latent_dim=3, **kw)
    if name == "dcvae":
        with torch.no_grad():
            model.conditional_prior.mean.copy_(torch.randn(len(kw["condition_names"]) or 1, 3))
            model.conditional_prior.logvar.copy_(torch.randn(len(kw["condition_names"]) or 1, 3))
    x, c = _data(60, seed=9)  # the latent scores' Gaussians and codes, of some "training" codes
    model.latent_gaussians = fit_latent_gaussians(model, x, c)
    model.latent_codes = LatentCodes.of(*training_codes(model, x, c), max(model.n_conditions, 1))
    return model.eval()


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8), rng.integers(0, 3, size=n)


@torch.no_grad()
def _hand_code(model, x_raw, c):
    """mu and log-variance of one sample from the encoder's layers; (1, 3) each."""
    x = torch.from_numpy(x_raw[None]).float() / 255.0
    n_cond = model.n_conditions
    onehot = F.one_hot(torch.tensor([c]), n_cond).float() if n_cond else torch.zeros(1, 0)
    h = model.encoder.net(torch.cat([x.flatten(1), onehot], dim=1))
    return x, onehot, h[:, :3], h[:, 3:].clamp(*LOGVAR_RANGE)


@torch.no_grad()
def _by_hand(model, x_raw, c):
    """(recon, elbo, kl) of one sample from the networks' layers and torch.distributions."""
    x, onehot, mu, logvar = _hand_code(model, x_raw, c)
    logits = model.decoder.net(torch.cat([mu, onehot], dim=1)).view(1, *SHAPE)
    recon = torch.sqrt(((x - torch.sigmoid(logits)) ** 2).sum())
    nll = -Bernoulli(logits=logits, validate_args=False).log_prob(x).sum()
    if model.name == "dcvae":
        prior = Normal(model.conditional_prior.mean[c],
                       torch.exp(0.5 * model.conditional_prior.logvar[c]))
    else:
        prior = Normal(torch.zeros(3), torch.ones(3))
    kl = kl_divergence(Normal(mu[0], torch.exp(0.5 * logvar[0])), prior).sum()
    g = model.latent_gaussians
    k = c if model.conditional else 0
    latent = -multivariate_normal(g.means[k].double().numpy(),
                                  np.linalg.inv(g.precisions[k].double().numpy())).logpdf(mu[0].double().numpy())
    train_x, train_c = _data(60, seed=9)  # the "training" codes of _model, each at its own c
    own = [_hand_code(model, xi, ci)[2][0].double().numpy() for xi, ci in zip(train_x, train_c, strict=True)
           if not model.conditional or ci == c]
    distances = np.sort([np.linalg.norm(mu[0].double().numpy() - o) for o in own])
    return {"recon": recon.item(), "elbo": (nll + kl).item(), "kl": kl.item(),
            "prior": -prior.log_prob(mu[0]).sum().item(), "latent": float(latent),
            "latent-knn": float(distances[:LATENT_KNN_K].mean())}


@pytest.mark.parametrize("name", ["dcvae", "cvae", "vae"])
@pytest.mark.parametrize("score", ["recon", "elbo", "kl", "prior", "latent", "latent-knn"])
def test_given_mode_scores_match_a_hand_computation(name, score):
    model = _model(name)
    x, c = _data()
    got = anomaly_scores(model, x, c if model.conditional else None, score=score)
    assert got.dtype == np.float64 and got.shape == (len(x),)
    for i in (0, 7, 29):
        expected = _by_hand(model, x[i], int(c[i]) if model.conditional else 0)[score]
        assert got[i] == pytest.approx(expected, rel=1e-5), i


def test_dcvae_kl_is_measured_against_the_conditional_prior_not_the_standard_normal():
    model = _model("dcvae")
    x, c = _data()
    kl = anomaly_scores(model, x, c, score="kl")
    with torch.no_grad():
        model.conditional_prior.mean.zero_()
        model.conditional_prior.logvar.zero_()
    kl_standard = anomaly_scores(model, x, c, score="kl")
    assert np.abs(kl - kl_standard).min() > 1e-3


def test_prior_score_grows_as_the_code_leaves_the_conditional_prior():
    model = _model("dcvae")
    x, c = _data()
    near = anomaly_scores(model, x, c, score="prior")
    with torch.no_grad():  # move condition c's prior far from every code: all codes become atypical
        model.conditional_prior.mean.add_(25.0)
    far = anomaly_scores(model, x, c, score="prior")
    assert (far > near + 100).all()


def test_gaussian_elbo_uses_the_standardised_input_and_the_learned_output_variance():
    torch.manual_seed(0)
    model = build_model("vae", input_shape=[4], hidden_dims=[32, 16], latent_dim=2,
                        likelihood="gaussian").eval()
    shift, scale = torch.tensor([1.0, -1.0, 5.0, 0.0]), torch.tensor([2.0, 0.5, 3.0, 1.0])
    with torch.no_grad():
        model.input_shift.copy_(shift)
        model.input_scale.copy_(scale)
        model.likelihood.logvar.copy_(torch.tensor([-1.0, 0.0, 0.5, 1.0]))
    raw = np.random.default_rng(0).normal(2.0, 3.0, size=(5, 4)).astype(np.float32)
    with torch.no_grad():
        x = (torch.from_numpy(raw) - shift) / scale
        h = model.encoder.net(x)
        mu, logvar = h[:, :2], h[:, 2:].clamp(*LOGVAR_RANGE)
        mean = model.decoder.net(mu)
        nll = -Normal(mean, torch.exp(0.5 * model.likelihood.logvar)).log_prob(x).sum(1)
        kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
        recon = (x - mean).norm(dim=1)
    np.testing.assert_allclose(anomaly_scores(model, raw, score="elbo"), (nll + kl).numpy(), rtol=1e-5)
    np.testing.assert_allclose(anomaly_scores(model, raw, score="recon"), recon.numpy(), rtol=1e-5)


@pytest.mark.parametrize("score", sorted(SCORES))
def test_scores_are_deterministic(score):
    model = _model()
    x, c = _data()
    model.train()  # scoring must not depend on the mode the caller left the model in
    first = anomaly_scores(model, x, c, score=score)
    second = anomaly_scores(model, x, c, score=score)
    assert np.array_equal(first, second)
    assert np.array_equal(anomaly_scores(model, x, score=score), anomaly_scores(model, x, score=score))


@pytest.mark.parametrize("score", sorted(SCORES))
@pytest.mark.parametrize("mode", ["given", "marginal"])
def test_scores_do_not_depend_on_the_batch_size(score, mode):
    model = _model()
    x, c = _data(n=40)
    c = c if mode == "given" else None
    reference = anomaly_scores(model, x, c, score=score, batch_size=1024)
    for batch_size in (1, 7):
        np.testing.assert_allclose(anomaly_scores(model, x, c, score=score, batch_size=batch_size),
                                   reference, rtol=1e-5, atol=1e-6)


def test_a_sample_scores_the_same_whatever_else_is_in_the_batch():
    model = _model()
    x, c = _data(n=40)
    perm = np.random.default_rng(1).permutation(len(x))
    for cond in (c, None):
        whole = anomaly_scores(model, x, cond, score="elbo")
        shuffled = anomaly_scores(model, x[perm], None if cond is None else cond[perm], score="elbo")
        np.testing.assert_allclose(shuffled, whole[perm], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["given", "marginal"])
def test_sampled_elbo_is_seeded_and_batch_independent(mode):
    model = _model()
    x, c = _data(n=25)
    c = c if mode == "given" else None
    a = anomaly_scores(model, x, c, score="elbo", n_samples=4, seed=3)
    assert np.array_equal(a, anomaly_scores(model, x, c, score="elbo", n_samples=4, seed=3))
    for batch_size in (1, 7):
        np.testing.assert_allclose(
            anomaly_scores(model, x, c, score="elbo", n_samples=4, seed=3, batch_size=batch_size),
            a, rtol=1e-5, atol=1e-6)
    other_seed = anomaly_scores(model, x, c, score="elbo", n_samples=4, seed=4)
    assert not np.allclose(a, other_seed)
    at_the_mean = anomaly_scores(model, x, c, score="elbo")
    assert not np.allclose(a, at_the_mean)


def test_sampled_elbo_draws_around_the_posterior_mean():
    """With a posterior of near-zero width every sample is mu: the sampled and mean ELBO agree."""
    model = _model("vae")
    with torch.no_grad():
        last = model.encoder.net[-1]
        last.weight[3:].zero_()
        last.bias[3:].fill_(LOGVAR_RANGE[0])  # log-variance -12: std 0.0025
    x, _ = _data()
    sampled = anomaly_scores(model, x, score="elbo", n_samples=8, seed=0)
    np.testing.assert_allclose(sampled, anomaly_scores(model, x, score="elbo"), rtol=1e-3)


@pytest.mark.parametrize("name", ["dcvae", "cvae"])
@pytest.mark.parametrize("score", sorted(SCORES))
def test_marginal_mode_is_the_minimum_over_every_training_condition(name, score):
    model = _model(name)
    x, labels = _data(n=40)
    per_condition = np.stack([anomaly_scores(model, x, np.full(len(x), k), score=score)
                              for k in range(len(CONDITIONS))])
    marginal = anomaly_scores(model, x, None, score=score)
    np.testing.assert_allclose(marginal, per_condition.min(axis=0), rtol=1e-5, atol=1e-6)
    # the labels we hold change given-mode scores, but marginal mode never takes them
    given = anomaly_scores(model, x, labels, score=score)
    shuffled = anomaly_scores(model, x, np.roll(labels, 1), score=score)
    assert not np.allclose(given, shuffled)
    assert np.all(marginal <= given + 1e-6)


def test_marginal_mode_takes_each_samples_own_best_condition():
    """Prior of condition k := posterior of sample k under k, so sample k's KL is 0 only under k."""
    model = _model("dcvae")
    x, _ = _data(n=6)
    x[:3] = np.array([0, 128, 255], dtype=np.uint8)[:, None, None, None]  # three distinct images
    with torch.no_grad():
        for k in range(len(CONDITIONS)):
            onehot = F.one_hot(torch.tensor([k]), len(CONDITIONS)).float()
            mu, logvar = model.encode(model.prepare(torch.from_numpy(x[k:k + 1])), onehot)
            model.conditional_prior.mean[k] = mu[0]
            model.conditional_prior.logvar[k] = logvar[0]
    per_condition = np.stack([anomaly_scores(model, x, np.full(len(x), k), score="kl")
                              for k in range(len(CONDITIONS))])
    assert list(per_condition[:, :3].argmin(axis=0)) == [0, 1, 2]
    marginal = anomaly_scores(model, x, None, score="kl")
    np.testing.assert_allclose(marginal[:3], 0.0, atol=1e-5)
    assert np.all(per_condition[:, :3].max(axis=0) > 1e-3)  # and clearly not 0 elsewhere
    np.testing.assert_allclose(marginal, per_condition.min(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["vae", "beta-vae", "factorvae", "rfvae", "beta-tcvae"])
def test_unconditional_models_ignore_conditions(name):
    model = _model(name)
    x, c = _data()
    for score in SCORES:
        assert np.array_equal(anomaly_scores(model, x, c, score=score),
                              anomaly_scores(model, x, None, score=score))


def test_conditional_model_with_one_condition_needs_no_labels():
    model = _model("dcvae", condition_names=[])
    x, _ = _data()
    assert model.n_conditions == 1
    assert np.array_equal(anomaly_scores(model, x, None, score="elbo"),
                          anomaly_scores(model, x, np.zeros(len(x)), score="elbo"))


def test_unknown_score_name_lists_the_scores():
    x, _ = _data(n=2)
    message = (r"unknown score 'mahalanobis'; choose one of "
               r"\['elbo', 'kl', 'latent', 'latent-knn', 'prior', 'recon'\]")
    with pytest.raises(ValueError, match=message):
        anomaly_scores(_model("vae"), x, score="mahalanobis")


@pytest.mark.parametrize("mode", ["given", "marginal"])
def test_a_table_of_scores_equals_each_score_alone(mode):
    """score_table shares one encoder/decoder pass between scores: no score may notice."""
    model = _model()
    x, c = _data(n=40)
    c = c if mode == "given" else None
    table = score_table(model, x, c, scores=tuple(sorted(SCORES)), batch_size=16)
    for score in SCORES:
        alone = score_table(model, x, c, scores=(score,), batch_size=16)[score]
        np.testing.assert_array_equal(table[score], alone)


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
@pytest.mark.parametrize("name", ["dcvae", "vae"])
def test_encoding_each_condition_equals_the_full_encoder_on_repeated_input(name, backbone):
    # marginal mode runs the encoder's condition-free part once per sample; it must be the same
    # posterior as the whole encoder run on each (sample, condition) pair
    model = _model(name, backbone=backbone, condition_names=CONDITIONS if name == "dcvae" else [])
    x = model.prepare(torch.as_tensor(_data(7)[0]))
    k = max(model.n_conditions, 1)
    c = torch.arange(k).repeat(len(x)) if model.conditional else None
    onehot = model.condition_onehot(c, len(x) * k)
    with torch.no_grad():
        fast = model.encode_each(x, onehot)
        full = model.encode(x.repeat_interleave(k, dim=0), onehot)
    for got, want in zip(fast, full, strict=True):
        assert got.shape == want.shape == (len(x) * k, 3)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fast[0][0], fast[0][1]) or k == 1  # the condition changes mu


def test_encoding_each_condition_refuses_rows_that_do_not_fit_the_samples():
    model = _model("dcvae")
    x = model.prepare(torch.as_tensor(_data(4)[0]))
    onehot = model.condition_onehot(torch.zeros(10, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="10 condition rows for 4 samples"):
        model.encode_each(x, onehot)


@pytest.mark.parametrize("name", ["dcvae", "vae"])
def test_explain_shows_the_condition_and_reconstruction_behind_each_score(name):
    """In marginal mode the explanation sits at the condition whose score is the minimum (the one
    marginal scoring reports); its reconstruction is the x̂ that Eq. 17 measures."""
    torch.manual_seed(0)
    model = build_model(name, input_shape=[1, 8, 8], hidden_dims=[32], latent_dim=2,
                        condition_names=["a", "b", "c"]).eval()
    x = np.random.default_rng(0).integers(0, 256, size=(20, 1, 8, 8), dtype=np.uint8)
    why = explain(model, x, batch_size=7)
    recon = anomaly_scores(model, x, score="recon")
    np.testing.assert_allclose(why.score, recon, rtol=1e-6)
    distance = np.linalg.norm((x / 255.0 - why.reconstruction).reshape(len(x), -1), axis=1)
    np.testing.assert_allclose(distance, recon, rtol=1e-4)
    assert why.mu.shape == why.logvar.shape == why.kl.shape == (20, 2)
    if name == "vae":
        assert why.condition is None
        return
    per_condition = score_table(model, x, scores=("recon",), per_condition=True)["recon"]
    assert per_condition.shape == (20, 3)
    assert np.array_equal(why.condition, per_condition.argmin(axis=1))
    given = explain(model, x, np.full(20, 1))
    assert np.array_equal(given.condition, np.full(20, 1))
    np.testing.assert_allclose(given.score, per_condition[:, 1], rtol=1e-5)
