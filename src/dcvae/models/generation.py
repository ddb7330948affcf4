"""Generation from a trained VAE: samples from its prior (the paper's "random generations") and
latent traversals, in data units (images in [0, 1], tables in their own units).

Samples are the decoder's mean at z ~ p(z|c): N(0, I) for the unconditional models and CVAE, the
learned conditional prior r(z|c) for dCVAE (a mixture prior is sampled exactly: a component per
dimension by its weight, then its Gaussian). A traversal sweeps one latent dimension at a time
over ±``span`` prior standard deviations around a seed sample's posterior mean, the others fixed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from dcvae.models.base import VAE

#: The most samples or traversal steps one call makes (a grid of them is the point, not a dataset).
MAX_SAMPLES = 100_000


def check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"n must be a whole number of samples in 1..{MAX_SAMPLES}, got {n!r}")
    return int(n)


def condition_indices_for(model: VAE, n: int, c: int | np.ndarray | None, *, seed: int) -> Tensor | None:
    """Each sample's condition index: None for an unconditional model; drawn uniformly (seeded) for
    a conditional one when ``c`` is None; ``c`` itself when it is one index or one per sample."""
    if not model.conditional:
        if c is not None:
            raise ValueError(f"{model.name} is unconditional: it takes no condition")
        return None
    k = model.n_conditions
    if c is None:
        return torch.from_numpy(np.random.default_rng(seed).integers(0, k, n))
    index = np.broadcast_to(np.asarray(c), (n,)) if np.ndim(c) == 0 else np.asarray(c)
    if index.shape != (n,) or index.dtype.kind not in "iu" or (index < 0).any() or (index >= k).any():
        raise ValueError(f"c must be one condition index in 0..{k - 1} or one per sample ({n}), got {c!r}")
    return torch.from_numpy(index.astype(np.int64))


@torch.no_grad()
def sample(model: VAE, n: int, c: int | np.ndarray | None = None, *, seed: int = 0) -> np.ndarray:
    """``n`` samples of the model, float32 ``(n, *input_shape)`` in data units; seeded."""
    check_count(n)
    model.eval()
    device = model.input_shift.device
    cond = condition_indices_for(model, int(n), c, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    z = _prior_sample(model, int(n), cond, generator).to(device)
    return _decode(model, z, cond)


def _prior_sample(model: VAE, n: int, c: Tensor | None, generator: torch.Generator) -> Tensor:
    d = model.config.latent_dim
    noise = torch.randn(n, d, generator=generator)
    prior = getattr(model, "conditional_prior", None)
    if prior is not None and hasattr(prior, "logits"):  # a mixture: pick a component per dimension
        means, logvars, log_weights = (t.cpu() for t in prior(c))
        pick = torch.multinomial(log_weights.exp().transpose(1, 2).reshape(-1, means.shape[1]), 1,
                                 generator=generator).view(n, 1, d)
        mean, logvar = means.gather(1, pick).squeeze(1), logvars.gather(1, pick).squeeze(1)
    else:
        mean, logvar = (t.cpu() for t in model.prior(c, n))
    return mean + noise * (0.5 * logvar).exp()


def _decode(model: VAE, z: Tensor, c: Tensor | None) -> np.ndarray:
    onehot = model.condition_onehot(c, z.shape[0])
    x = model.reconstruction(model.decode(z, onehot))
    x = x * model.input_scale + model.input_shift  # back from the model's space to the data's
    return x.cpu().numpy().astype(np.float32)


@torch.no_grad()
def traverse(model: VAE, x: np.ndarray, c: int | None = None, *, steps: int = 7,
             span: float = 3.0) -> np.ndarray:
    """Latent traversals of one seed sample ``x`` (shape ``input_shape``, raw as the detector takes
    it): float32 ``(latent_dim, steps, *input_shape)``, row i sweeping dimension i from −span to
    +span prior standard deviations (of p(z|c)) around the posterior mean."""
    if not 2 <= steps <= 101 or not 0 < span <= 10:
        raise ValueError(f"steps must be in 2..101 and span in (0, 10], got {steps} and {span}")
    model.eval()
    device = model.input_shift.device
    cond = condition_indices_for(model, 1, 0 if c is None and model.conditional else c, seed=0)
    onehot = model.condition_onehot(cond, 1)
    seed = torch.as_tensor(np.asarray(x)[None]).to(device)
    mu, _ = model.encode(model.prepare(seed), onehot)
    _, prior_logvar = model.prior(cond, 1)
    std = (0.5 * prior_logvar.to(device)).exp().reshape(-1)
    d = model.config.latent_dim
    offsets = torch.linspace(-span, span, steps, device=device)
    z = mu.repeat(d * steps, 1)
    rows = torch.arange(d, device=device).repeat_interleave(steps)
    z[torch.arange(d * steps, device=device), rows] += offsets.repeat(d) * std[rows]
    images = _decode(model, z, None if cond is None else cond.repeat(d * steps))
    return images.reshape(d, steps, *model.config.input_shape)


def image_grid(images: np.ndarray, *, gap: int = 1) -> np.ndarray:
    """Tile ``(rows, cols, C, H, W)`` images in [0, 1] into one uint8 picture ``(H', W', C)`` (C 1
    or 3) with ``gap`` white pixels between tiles, for a PNG."""
    if images.ndim != 5 or images.shape[2] not in (1, 3):
        raise ValueError(f"expected (rows, cols, C, H, W) images with C 1 or 3, got {images.shape}")
    rows, cols, channels, h, w = images.shape
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, channels), 255, dtype=np.uint8)
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    for i in range(rows):
        for j in range(cols):
            top, left = i * (h + gap), j * (w + gap)
            out[top:top + h, left:left + w] = pixels[i, j].transpose(1, 2, 0)
    return out


def generation_grids(model: VAE, seed_image: np.ndarray, *, n: int = 64, seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """The pictures that show what a model generates: ``"samples"``, ``n`` (a square number)
    seeded samples ``(rows, cols, *input_shape)`` with conditions drawn uniformly, and the latent
    traversals of ``seed_image`` (:func:`traverse`): ``"traversal"`` for an unconditional model,
    ``"traversal-NAME"`` given each condition of a conditional one. Tile each with
    :func:`image_grid`."""
    side = int(round(n ** 0.5))
    if side * side != n:
        raise ValueError(f"n must be a square number of samples, got {n}")
    grids = {"samples": sample(model, n, seed=seed).reshape(side, side, *model.config.input_shape)}
    if not model.conditional:
        grids["traversal"] = traverse(model, seed_image)
    for index, name in enumerate(model.config.condition_names if model.conditional else ()):
        grids[f"traversal-{name}"] = traverse(model, seed_image, index)
    return grids
