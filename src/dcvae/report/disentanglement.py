"""The disentanglement section: the metrics of the ``factors`` runs (model × metric, mean ± std
over seeds, one table per measurement set) and, from the first seed's saved model of each row,
its samples and latent traversals (``dcvae.models.generation.generation_grids``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image as PILImage

from dcvae.disentanglement.measure import MEASUREMENT_SETS, METRICS
from dcvae.models import VAE
from dcvae.models.generation import generation_grids, image_grid
from dcvae.report.context import _Context, _datasets, _label_order, _slug, dataset_name
from dcvae.report.document import Block, Heading, Paragraph, Table

METRIC_NAMES = {"mig": "MIG", "factorvae": "FactorVAE score", "dci_disentanglement": "DCI disentanglement",
                "dci_completeness": "DCI completeness", "dci_informativeness": "DCI informativeness",
                "sap": "SAP"}
SET_TITLES = {"remaining": "remaining factors (all but the condition factor)",
              "per_class": "the remaining factors within each class of the condition factor, averaged",
              "all": "all factors (unconditional models only: the conditional ones are told one)"}
FIGURE_PREFIX = "disentanglement-"


def disentanglement_section(ctx: _Context) -> list[Block]:
    """Empty when the store holds no finished ``factors`` run, so other reports are unchanged."""
    runs = ctx.factor_runs
    if not runs:
        return []
    blocks: list[Block] = [
        Heading(2, "Disentanglement (protocol factors)"),
        Paragraph("Each model trains on every class of the training split (the conditional models "
                  "with the class factor as their condition c) and is measured on the posterior means "
                  "of the test images, each encoded given its own condition "
                  "(`dcvae.disentanglement.measure`). MIG is the paper's Eq. 9; every metric lies in "
                  "[0, 1], higher is more disentangled. Mean ± std (ddof 0) over the seeds.")]
    for d in _datasets(runs):
        in_d = [r for r in runs if r["dataset"] == d]
        labels = _label_order(ctx, in_d)
        factor = sorted({str(r.get("condition_factor")) for r in in_d})
        blocks.append(Heading(3, f"{dataset_name(d)} (condition factor: {', '.join(factor)})"))
        for part in MEASUREMENT_SETS:
            rows = []
            for label in labels:
                values = [r["disentanglement"][part] for r in in_d
                          if ctx.labels[r["key"]] == label and part in r.get("disentanglement", {})]
                if values:
                    rows.append((label, str(len(values)),
                                 *(mean_std([float(v[m]) for v in values]) for m in METRICS)))
            if rows:
                blocks.append(Table(("Model", "seeds", *(METRIC_NAMES[m] for m in METRICS)), tuple(rows),
                                    f"{dataset_name(d)}, {SET_TITLES[part]}."))
        blocks.append(_budget_table(ctx, d, labels, in_d))
        blocks.extend(_figures(ctx, d, labels, in_d))
    return blocks


def mean_std(values: list[float]) -> str:
    """Mean ± standard deviation (ddof 0) over seeds, to 3 decimals; one run has no spread."""
    if len(values) == 1:
        return f"{values[0]:.3f} (1 run)"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _budget_table(ctx: _Context, d: str, labels: list[str], runs: list[dict[str, Any]]) -> Table:
    rows = []
    for label in labels:
        own = [r for r in runs if ctx.labels[r["key"]] == label]
        rows.append((label, _span(r.get("n_train") for r in own), _span(r.get("epochs_run") for r in own),
                     _span(r.get("steps") for r in own), _span(r.get("n_test") for r in own),
                     f"{np.mean([float(r.get('train_seconds', 0.0)) for r in own]):.1f}"))
    return Table(("Model", "train images", "epochs", "steps", "test images measured", "train s/run"),
                 tuple(rows), f"{dataset_name(d)}: the training budget behind the tables above.")


def _span(values: Any) -> str:
    found = sorted({int(v) for v in values if isinstance(v, int)})
    return "—" if not found else str(found[0]) if len(found) == 1 else f"{found[0]}–{found[-1]}"


def _figures(ctx: _Context, d: str, labels: list[str], runs: list[dict[str, Any]]) -> list[Block]:
    """Samples and traversals of each row's first seed, drawn when its saved model is here; else the
    last report's, kept with a caption saying so."""
    blocks: list[Block] = []
    missing = []
    for label in labels:
        first = min((r for r in runs if ctx.labels[r["key"]] == label), key=lambda r: r["seed"])
        if not first.get("model_dir"):
            continue
        if not (ctx.directory / first["model_dir"] / "config.json").is_file():
            missing.append(label)
            continue
        detector, data = ctx.detector(first), ctx.dataset(d)
        if isinstance(detector, str) or isinstance(data, str):
            blocks.append(Paragraph(f"{label}: figures skipped: "
                                    f"{detector if isinstance(detector, str) else data}."))
            continue
        model = detector.model_
        if not isinstance(model, VAE):  # the grid refuses these; a hand-edited store may not
            continue
        for what, grid in generation_grids(model, data.test.x[0]).items():
            path = ctx.figures / f"{FIGURE_PREFIX}{_slug(d)}-{_slug(label)}-{what}.png"
            picture = image_grid(grid)
            PILImage.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(path)
            blocks.append(ctx.figure(path, _caption(label, first["seed"], what, model)))
    if missing:
        why = f"the saved models of {', '.join(missing)} are not under `models/` here"
        kept = ctx.keep_figures(f"{FIGURE_PREFIX}{_slug(d)}-", why)
        blocks.extend(kept)
        if not kept:
            blocks.append(Paragraph(f"Figures skipped: {why}."))
    elif not blocks:
        blocks.append(Paragraph("No figures: no run saved its model (`save_models` in the grid)."))
    return blocks


def _caption(label: str, seed: int, what: str, model: VAE) -> str:
    if what == "samples":
        prior = "the conditional prior r(z|c)" if model.conditional else "the prior N(0, I)"
        return (f"{label}, seed {seed}: 64 samples (the decoder's mean at z drawn from {prior}"
                + (", conditions drawn uniformly)" if model.conditional else ")"))
    given = what.removeprefix("traversal-") if what != "traversal" else None
    return (f"{label}, seed {seed}: latent traversal of the first test image"
            + (f" given c = {given!r}" if given else "") + ": row i sweeps z_i over ±3 prior standard "
            "deviations around its posterior mean, the other dimensions fixed.")
