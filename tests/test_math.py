"""The closed forms against torch.distributions; the TC estimators on known cases."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from dcvae.math import (
    gaussian_kl,
    gaussian_log_density,
    gaussian_mixture_kl,
    kl_decomposition,
    mixture_log_density,
    permute_dims,
    standard_normal_kl,
    total_correlation,
)


@pytest.fixture
def params():
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(64, 5, generator=g), torch.randn(64, 5, generator=g)
    lv_q, lv_p = torch.randn(64, 5, generator=g), torch.randn(64, 5, generator=g)
    return mu_q, lv_q, mu_p, lv_p


def test_gaussian_kl_matches_torch_distributions(params):
    mu_q, lv_q, mu_p, lv_p = params
    expected = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp()))
    torch.testing.assert_close(gaussian_kl(mu_q, lv_q, mu_p, lv_p), expected)


def test_standard_normal_kl_matches_torch_distributions(params):
    mu, lv, _, _ = params
    q = Independent(Normal(mu, (0.5 * lv).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(standard_normal_kl(mu, lv).sum(1), kl_divergence(q, p))


def test_log_density_matches_torch_distributions(params):
    mu, lv, x, _ = params
    torch.testing.assert_close(gaussian_log_density(x, mu, lv),
                               Normal(mu, (0.5 * lv).exp()).log_prob(x))


def _mixture(components=4, dims=5, seed=1):
    """A (1, M, d) factorised Gaussian mixture with well-separated, unequally weighted components."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(1, components, dims, generator=g)
    logvars = 0.5 * torch.randn(1, components, dims, generator=g)
    log_weights = torch.log_softmax(torch.randn(1, components, dims, generator=g), dim=1)
    reference = MixtureSameFamily(Categorical(logits=log_weights[0].T),
                                  Normal(means[0].T, (0.5 * logvars[0].T).exp()))
    return (means, logvars, log_weights), reference


def test_mixture_log_density_matches_torch_distributions(params):
    _, _, x, _ = params
    mixture, reference = _mixture()
    torch.testing.assert_close(mixture_log_density(x, *mixture), reference.log_prob(x))


def test_mixture_kl_of_one_component_is_the_closed_form(params):
    mu_q, lv_q, mu_p, lv_p = params
    one = (mu_p.unsqueeze(1), lv_p.unsqueeze(1), torch.zeros_like(mu_p).unsqueeze(1))
    torch.testing.assert_close(gaussian_mixture_kl(mu_q, lv_q, *one), gaussian_kl(mu_q, lv_q, mu_p, lv_p),
                               atol=1e-4, rtol=1e-4)


def test_mixture_kl_matches_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(2)
    mu_q, lv_q = 2.0 * torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g) - 1.0
    mixture, reference = _mixture()
    q = Normal(mu_q, (0.5 * lv_q).exp())
    torch.manual_seed(3)
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - reference.log_prob(z)).mean(0)
    kl = gaussian_mixture_kl(mu_q, lv_q, *mixture)
    assert (kl >= -1e-5).all()
    torch.testing.assert_close(kl, monte_carlo, atol=0.02, rtol=0.01)


def _posterior_batch(mean: torch.Tensor, std: float = 0.5, seed: int = 0):
    """Posteriors N(mean, std²) and one sample of each: (z, mu, logvar)."""
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed))
    return mean + std * noise, mean, torch.full_like(mean, 2 * math.log(std))


def test_total_correlation_near_zero_for_independent_latents():
    g = torch.Generator().manual_seed(1)
    z, mu, lv = _posterior_batch(torch.randn(1024, 3, generator=g))
    assert abs(total_correlation(z, mu, lv).item()) < 0.1


def test_total_correlation_positive_for_correlated_latents():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(1024, 1, generator=g)
    correlated = torch.cat([base, base + 0.1 * torch.randn(1024, 2, generator=g)], dim=1)
    z, mu, lv = _posterior_batch(correlated)
    independent = _posterior_batch(torch.randn(1024, 3, generator=g))
    tc_corr = total_correlation(z, mu, lv).item()
    assert tc_corr > 0.8
    assert tc_corr > total_correlation(*independent).item() + 0.8


def test_grouped_total_correlation_removes_dependence_explained_by_the_condition():
    """Two conditions with shifted means: z is dependent overall, independent within c."""
    g = torch.Generator().manual_seed(2)
    c = torch.arange(1024) % 2
    shift = (c.float() * 6.0 - 3.0).unsqueeze(1)
    z, mu, lv = _posterior_batch(torch.randn(1024, 2, generator=g) + shift)
    assert total_correlation(z, mu, lv).item() > 0.4
    assert abs(total_correlation(z, mu, lv, groups=c).item()) < 0.1


def test_kl_decomposition_mutual_information_is_bounded_by_log_batch():
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(256, 4, generator=g)
    z, mu, lv = mean, mean, torch.full_like(mean, 2 * math.log(0.01))
    parts = kl_decomposition(z, mu, lv)
    mi = (parts["log_qz_x"] - parts["log_qz"]).mean().item()
    # distinct, narrow posteriors: each z is explained by its own x alone, MI -> log M
    assert mi == pytest.approx(math.log(256), abs=0.05)


def test_permute_dims_keeps_marginals_and_breaks_dependence():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(2000, 1, generator=g)
    z = torch.cat([base, base], dim=1)
    perm = permute_dims(z, generator=g)
    for k in range(2):
        assert torch.equal(perm[:, k].sort().values, z[:, k].sort().values)
    assert abs(torch.corrcoef(perm.T)[0, 1].item()) < 0.1
    assert torch.corrcoef(z.T)[0, 1].item() > 0.99
