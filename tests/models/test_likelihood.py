"""The likelihood object (dcvae.models.likelihood) against torch.distributions, and its data rule."""

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from dcvae.models import BernoulliLikelihood, GaussianLikelihood, build_model, likelihood_for


def test_bernoulli_is_torch_bernoulli_on_logits():
    logits, x = torch.randn(5, 1, 3, 3), torch.rand(5, 1, 3, 3).round()
    expected = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(BernoulliLikelihood().log_prob(x, logits), expected)
    torch.testing.assert_close(BernoulliLikelihood().mean(logits), torch.sigmoid(logits))


def test_gaussian_is_torch_normal_with_its_learned_variance():
    likelihood = GaussianLikelihood((4,))
    with torch.no_grad():
        likelihood.logvar.copy_(torch.tensor([-1.0, 0.0, 0.5, 2.0]))
    mean, x = torch.randn(6, 4), torch.randn(6, 4)
    expected = Normal(mean, torch.exp(0.5 * likelihood.logvar)).log_prob(x).sum(1)
    torch.testing.assert_close(likelihood.log_prob(x, mean), expected)
    assert likelihood.mean(mean) is mean and likelihood.standardises_inputs


def test_the_model_holds_its_likelihood_and_only_the_gaussian_has_weights():
    gaussian = build_model("vae", input_shape=[4], hidden_dims=[8], latent_dim=2, likelihood="gaussian")
    bernoulli = build_model("vae", input_shape=[4], hidden_dims=[8], latent_dim=2)
    assert isinstance(gaussian.likelihood, GaussianLikelihood)
    assert "likelihood.logvar" in gaussian.state_dict()
    assert not any(k.startswith("likelihood") for k in bernoulli.state_dict())


def test_auto_choice_and_the_bernoulli_data_rule():
    assert likelihood_for(np.array([[0, 255]], np.uint8)) == "bernoulli"  # pixel intensities
    assert likelihood_for(np.full((1, 1, 2, 2), 0.5, np.float32)) == "bernoulli"  # an image in [0, 1]
    # a table scaled to [0, 1] is not pixels (issue 15, item 2): Gaussian, like every other table
    assert likelihood_for(np.array([[0.2, 0.9]], np.float32)) == "gaussian"
    assert likelihood_for(np.array([[-0.2, 3.0]], np.float32)) == "gaussian"
    BernoulliLikelihood.check_inputs(np.array([[0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        BernoulliLikelihood.check_inputs(np.array([[0.0, 1.5]], np.float32))
    GaussianLikelihood.check_inputs(np.array([[1e6, -3.0]], np.float32))
