"""The paper's Figure 3 (posterior means of test images, UMAP beyond 2-D) and Figures 4–5 (the
decoder over a 2-D grid of the prior, one per condition)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dcvae.models import VAE
from dcvae.report.context import _Context, _index_key, _slug, dataset_name, model_name, plot_text, save_png
from dcvae.report.document import Block, Heading, Paragraph
from dcvae.report.figure_runs import (
    _kept_figures,
    _loaded,
    _role,
    _runs_with_test_images,
    _subsample,
    anomaly_labels,
)

MANIFOLD_STEPS = 10  # a 10×10 grid of decoded images
MANIFOLD_SPAN = 2.5  # in prior standard deviations either side of the prior mean
MANIFOLD_CONDITIONS = 3  # conditional models: one grid for each of the first 3 conditions
UMAP_NEIGHBOURS = 15


# ============================================================================ 6. Figure 3

def latent_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figure 3: latent space")]
    if kept := _kept_figures(ctx, "latent-"):
        return [*blocks, *kept]
    for d, run, data in _runs_with_test_images(ctx, blocks):
        index = _subsample(ctx, len(data.test))
        x, y = data.test.x[index], data.test.y[index]
        models, notes = _loaded(ctx, run)
        panels = []
        for record, detector in models:
            assert isinstance(detector.model_, VAE)  # the figure runs hold VAEs only
            mu = ctx.encoded(record, detector.model_, x).mu
            embedded, how = _embed_2d(mu)
            if embedded is None:
                notes.append(f"{model_name(record['model'])}: {how}; left out.")
                continue
            panels.append((f"{model_name(record['model'])} ({how})", embedded))
        blocks += [Paragraph(n) for n in notes]
        if not panels:
            continue
        path = ctx.figures / f"latent-{_slug(d)}.png"
        _plot_latent(path, panels, y, anomaly_labels(run, y), data.class_names)
        blocks.append(ctx.figure(path, f"{dataset_name(d)}, {run.protocol}, {_role(run)}: posterior means "
                                  f"of {len(index)} test images (seeded subsample), coloured by class, "
                                  "anomalies marked with a black ×; conditional models at the condition "
                                  "with the smallest reconstruction error (marginal mode). Latent spaces "
                                  "of more than 2 dimensions are reduced with UMAP (15 neighbours, "
                                  "random_state 0)." + _index_key(data.class_names)))
    return blocks


def _embed_2d(mu: np.ndarray) -> tuple[np.ndarray | None, str]:
    """2-D coordinates of the posterior means: as they are for d ≤ 2, UMAP above."""
    d = mu.shape[1]
    if d == 1:
        return np.c_[mu[:, 0], np.zeros(len(mu))], "1-D latent"
    if d == 2:
        return mu, "2-D latent, no reduction"
    if len(mu) < 4:
        return None, "too few samples for UMAP"
    try:
        import umap  # lazy: slow to import, and an optional dependency (dcvae[report])
    except ImportError:
        return None, "umap-learn is not installed (pip install 'dcvae[report]')"
    with warnings.catch_warnings():  # UMAP warns that a random_state forces one thread
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_neighbors=min(UMAP_NEIGHBOURS, len(mu) - 1), n_components=2,
                            random_state=0)
        return np.asarray(reducer.fit_transform(mu)), f"UMAP of {d}-D latent"


def _plot_latent(path: Path, panels: list[tuple[str, np.ndarray]], y: np.ndarray, anomalies: np.ndarray,
                 class_names: tuple[str, ...]) -> None:
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(max(3.2 * cols, 4.5), 3.0 * rows + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    n = len(class_names)
    cmap = "tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"
    for ax, (title, xy) in zip(axes, panels, strict=False):
        ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap=cmap, vmin=0, vmax=max(n - 1, 1), s=3, linewidths=0)
        bad = anomalies == 1
        ax.scatter(xy[bad, 0], xy[bad, 1], marker="x", color="black", s=8, linewidths=0.5)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if n <= 20:  # a legend that can still be read
        colour = matplotlib.colormaps[cmap]
        handles = [Line2D([], [], marker="o", linestyle="", markersize=4, color=colour(k / max(n - 1, 1)),
                          label=plot_text(class_names[k], k)) for k in range(n)]
        handles.append(Line2D([], [], marker="x", linestyle="", color="black", label="anomaly"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(n + 1, max(6, 3 * cols)),
                   fontsize=7)
    save_png(fig, path)


# ============================================================================ 7. Figures 4–5

def manifold_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figures 4–5: the 2-D manifold")]
    if kept := _kept_figures(ctx, "manifold-"):
        return [*blocks, *kept]
    for d, run, data in _runs_with_test_images(ctx, blocks):
        x = data.test.x[_subsample(ctx, len(data.test))]
        models, notes = _loaded(ctx, run)
        blocks.append(Heading(3, f"{dataset_name(d)}, {run.protocol}, {_role(run)}"))
        blocks += [Paragraph(n) for n in notes]
        for record, detector in models:
            model = detector.model_
            assert isinstance(model, VAE)  # the figure runs hold VAEs only
            if model.config.latent_dim < 2:
                blocks.append(Paragraph(f"{model_name(record['model'])}: a 1-D latent has no 2-D manifold."))
                continue
            dims = relevant_dims(ctx.encoded(record, model, x).kl)
            panels = manifold_mosaics(model, dims)
            path = ctx.figures / f"manifold-{_slug(d)}-{_slug(record['model'])}.png"
            _plot_manifold(path, panels, f"{model_name(record['model'])}: z{dims[0]} (→) × z{dims[1]} (↑)")
            blocks.append(ctx.figure(path, _manifold_caption(model, record, dims, len(x))))
    return blocks


def relevant_dims(kl: np.ndarray) -> tuple[int, int]:
    """The two latent dimensions with the largest mean KL to the prior (the ones the model uses);
    (0, 1) when there are only two."""
    if kl.shape[1] == 2:
        return 0, 1
    first, second = np.argsort(-kl.mean(axis=0), kind="stable")[:2]
    return int(first), int(second)


@torch.no_grad()
def manifold_mosaics(model: VAE, dims: tuple[int, int], steps: int = MANIFOLD_STEPS,
                     span: float = MANIFOLD_SPAN) -> list[tuple[str, np.ndarray]]:
    """Decoded ``steps × steps`` grids over two latent dimensions, prior mean ± ``span`` prior sd
    (dCVAE: its learned r(z|c) per condition), other dimensions at the prior mean.

    Returns (panel title, mosaic image) per condition shown: the first ``MANIFOLD_CONDITIONS``
    conditions of a conditional model, one panel for an unconditional one.
    """
    model.eval()
    device = model.input_shift.device
    shown = list(range(min(MANIFOLD_CONDITIONS, model.n_conditions))) if model.conditional else [None]
    a, b = dims
    panels = []
    for c in shown:
        c_t = None if c is None else torch.tensor([c], device=device)
        mean, logvar = model.prior(c_t, 1)
        mean, sd = mean[0], torch.exp(0.5 * logvar[0])
        along_a = mean[a] + span * sd[a] * torch.linspace(-1, 1, steps, device=device)
        along_b = mean[b] + span * sd[b] * torch.linspace(1, -1, steps, device=device)  # up = larger
        z = mean.expand(steps * steps, -1).clone()
        z[:, a] = along_a.repeat(steps)
        z[:, b] = along_b.repeat_interleave(steps)
        onehot = model.condition_onehot(None if c_t is None else c_t.expand(steps * steps), steps * steps)
        decoded = model.reconstruction(model.decode(z, onehot)) * model.input_scale + model.input_shift
        images = decoded.clamp(0, 1).cpu().numpy()  # (steps², C, H, W)
        channels, height, width = images.shape[1:]
        mosaic = (images.reshape(steps, steps, channels, height, width)
                  .transpose(0, 3, 1, 4, 2).reshape(steps * height, steps * width, channels))
        title = "unconditional" if c is None else f"c = {plot_text(model.config.condition_names[c], c)}"
        panels.append((title, mosaic[..., 0] if channels != 3 else mosaic))
    return panels


def _plot_manifold(path: Path, panels: list[tuple[str, np.ndarray]], title: str) -> None:
    fig = Figure(figsize=(2.8 * len(panels), 3.1), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
    for ax, (name, mosaic) in zip(axes, panels, strict=True):
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    save_png(fig, path)


def _manifold_caption(model: VAE, record: dict[str, Any], dims: tuple[int, int], n: int) -> str:
    d = model.config.latent_dim
    which = ("the only two dimensions" if d == 2 else
             f"the two of {d} dimensions with the largest mean KL to the prior on {n} test images")
    prior = ("its learned conditional prior r(z|c)" if record["model"] == "dcvae" else "the prior N(0, I)")
    if model.conditional:
        names = model.config.condition_names
        shown = ", ".join(f"#{i} {c!r}" for i, c in enumerate(names[:MANIFOLD_CONDITIONS]))
        conditions = f" One grid per condition: {shown} (the first {min(len(names), MANIFOLD_CONDITIONS)} " \
                     f"of {len(names)})."
    else:
        conditions = ""
    return (f"{model_name(record['model'])}, seed {record['seed']}: decoder means on a "
            f"{MANIFOLD_STEPS}×{MANIFOLD_STEPS} grid over z{dims[0]} and z{dims[1]} ({which}), "
            f"each from the prior mean − {MANIFOLD_SPAN} to + {MANIFOLD_SPAN} prior standard deviations "
            f"of {prior}; the other dimensions at the prior mean.{conditions}")

