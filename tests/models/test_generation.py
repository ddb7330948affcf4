"""Generation: samples from the prior (the paper's random generations) and latent traversals."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.models import build_model
from dcvae.models.generation import _prior_sample, image_grid, sample, traverse


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def conditional(digits):
    """dCVAE-prior on every digit, the digit as condition."""
    return AnomalyDetector("dcvae-prior", latent_dim=8, epochs=40, patience=0, progress=False).fit(
        digits.train.x, c=digits.train.y)


def test_samples_are_seeded_images_in_the_unit_interval(conditional):
    model = conditional.model_
    a, b = sample(model, 12, seed=3), sample(model, 12, seed=3)
    assert a.shape == (12, 1, 8, 8) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, sample(model, 12, seed=4))
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_samples_of_a_condition_look_like_its_class(conditional, digits):
    """What a conditional generator is for: a nearest-neighbour classifier of the real digits names
    most samples drawn under condition k as k (chance is 10%)."""
    knn = KNeighborsClassifier(5).fit(digits.train.x.reshape(len(digits.train.x), -1) / 255.0, digits.train.y)
    hits = []
    for k in range(10):
        generated = sample(conditional.model_, 50, k, seed=k).reshape(50, -1)
        hits.append(np.mean(knn.predict(generated) == k))
    assert np.mean(hits) > 0.6, hits


def test_a_mixture_prior_is_sampled_with_its_moments():
    model = build_model("dcvae", input_shape=[4], latent_dim=3, hidden_dims=[8], condition_names=["a", "b"],
                        prior_components=3, likelihood="gaussian")
    with torch.no_grad():
        model.conditional_prior.mean.normal_(0, 2)
        model.conditional_prior.logits.normal_(0, 1)
    c = torch.ones(40_000, dtype=torch.long)
    z = _prior_sample(model, 40_000, c, torch.Generator().manual_seed(0))
    mean, logvar = model.conditional_prior.moments(c[:1])
    np.testing.assert_allclose(z.detach().mean(0), mean[0].detach(), atol=0.05)
    np.testing.assert_allclose(z.detach().var(0), logvar[0].detach().exp(), rtol=0.05)


def test_bad_sample_requests_are_refused(conditional):
    model = conditional.model_
    for n in (0, -1, 2.5, True, 10**9):
        with pytest.raises(ValueError, match="n must be"):
            sample(model, n)
    with pytest.raises(ValueError, match=r"c must be one condition index in 0..9"):
        sample(model, 3, 10)
    vae = build_model("vae", input_shape=[1, 8, 8], latent_dim=2, hidden_dims=[8])
    with pytest.raises(ValueError, match="unconditional"):
        sample(vae, 3, 1)


def test_a_traversal_sweeps_one_dimension_per_row_around_the_seed_code(conditional, digits):
    model = conditional.model_
    x = digits.test.x[0]
    grid = traverse(model, x, 3, steps=7)
    assert grid.shape == (8, 7, 1, 8, 8)
    # the middle step is the seed's own code, the same in every row
    assert all(np.allclose(grid[i, 3], grid[0, 3], atol=1e-6) for i in range(8))
    assert np.abs(grid[:, 0] - grid[:, -1]).max() > 0.05  # the ends of a sweep differ
    with pytest.raises(ValueError, match="steps"):
        traverse(model, x, 3, steps=1)


def test_the_image_grid_puts_each_tile_in_its_place():
    images = np.zeros((2, 3, 1, 2, 2), dtype=np.float32)
    images[1, 2] = 1.0
    grid = image_grid(images, gap=1)
    assert grid.shape == (5, 8, 1)
    assert (grid[3:5, 6:8] == 255).all() and (grid[0:2, 0:2] == 0).all() and (grid[2, :] == 255).all()
