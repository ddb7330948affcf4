"""The paper's Figures 1–2: an anomalous and a normal test image, each model's reconstruction,
with E (negative ELBO) and A (Eq. 17) from the library's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dcvae.detector import AnomalyDetector
from dcvae.models import VAE
from dcvae.report.context import LEAVE_ONE_OUT, _Context, _slug, dataset_name, model_name, plot_text, save_png
from dcvae.report.document import Block, Heading, Paragraph
from dcvae.report.figure_runs import (
    FigureRun,
    _kept_figures,
    _loaded,
    _picture,
    _saved_runs_or_reason,
    _test_images,
    pick_reconstruction_runs,
)
from dcvae.report.maps import map_scale, overlay
from dcvae.scoring import anomaly_scores, explain

# ============================================================================ 5. Figures 1–2

def reconstruction_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figures 1–2: reconstructions, E and A")]
    if kept := _kept_figures(ctx, "reconstruction-"):
        return [*blocks, *kept]
    saved, reason = _saved_runs_or_reason(ctx)
    if not saved:
        return [*blocks, Paragraph(f"Skipped: {reason}.")]
    if reason:
        blocks.append(Paragraph(f"Note: {reason}."))
    for run in pick_reconstruction_runs(saved):
        data = _test_images(ctx, run)
        if isinstance(data, str):
            blocks.append(Paragraph(f"{dataset_name(run.dataset)} skipped: {data}."))
            continue
        normal, anomalous = _sample_classes(run, data.class_names)
        index = [np.flatnonzero(data.test.y == k) for k in (anomalous, normal)]
        if any(len(i) == 0 for i in index):
            blocks.append(Paragraph(f"{dataset_name(run.dataset)} skipped: no test image of class "
                                    f"{data.class_names[anomalous]!r} or {data.class_names[normal]!r}."))
            continue
        x = data.test.x[[int(index[0][0]), int(index[1][0])]]
        models, notes = _loaded(ctx, run)
        path = ctx.figures / f"reconstruction-{_slug(run.dataset)}.png"
        shown = [plot_text(data.class_names[k], k) for k in (anomalous, normal)]
        _plot_reconstructions(path, x, models, shown)
        if run.note:
            notes.insert(0, f"Note: {run.note}.")
        blocks += [Paragraph(n) for n in notes]
        blocks.append(ctx.figure(path, _reconstruction_caption(run, data.class_names[normal],
                                                          data.class_names[anomalous])))
    return blocks


def _sample_classes(run: FigureRun, class_names: tuple[str, ...]) -> tuple[int, int]:
    """(normal class, anomalous class) of the two samples shown."""
    others = [i for i in range(len(class_names)) if i != run.target_class]
    if run.protocol != LEAVE_ONE_OUT:  # one-class: the target class is the normal one
        return run.target_class, others[0]
    if run.normal_class_name in class_names and class_names.index(run.normal_class_name) in others:
        return class_names.index(run.normal_class_name), run.target_class
    return others[0], run.target_class


def _plot_reconstructions(path: Path, x: np.ndarray,
                          models: list[tuple[dict[str, Any], AnomalyDetector]],
                          class_names: list[str]) -> None:
    """Row 1: the anomalous sample, row 2: the normal one (the paper's layout); column 1 the input,
    then each model's reconstruction titled with E (negative ELBO) and A (Eq. 17). Rows 3-4: each
    model's anomaly map of the two (``AnomalyDetector.anomaly_map``) over the input, on one colour
    scale for the whole figure."""
    cols = 1 + len(models)
    fig = Figure(figsize=(1.55 * cols, 8.0), layout="constrained")
    axes = fig.subplots(4, cols, squeeze=False)
    for row, role in enumerate(("anomalous", "normal")):
        axes[row, 0].imshow(_picture(x[row] / 255.0), cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(f"{role}\ninput {class_names[row]}", fontsize=7)
        axes[row + 2, 0].set_title(f"{role}: where\nthe error is", fontsize=7)
    maps = [detector.anomaly_map(x) for _, detector in models]
    scale = map_scale(np.stack(maps)) if maps else 1.0
    images = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    for j, amap in enumerate(maps, start=1):
        for row in range(2):
            axes[row + 2, j].imshow(overlay(images[row], amap[row], scale))
    for j, (record, detector) in enumerate(models, start=1):
        model = detector.model_
        assert isinstance(model, VAE)  # the figure runs hold VAEs only
        reconstruction = explain(model, x).reconstruction  # at the condition with the smallest A
        e = anomaly_scores(model, x, None, score="elbo")  # marginal mode: min over conditions
        a = anomaly_scores(model, x, None, score="recon")
        flags = detector.predict(x)
        for row in range(2):
            axes[row, j].imshow(_picture(reconstruction[row]), cmap="gray", vmin=0, vmax=1)
            axes[row, j].set_title(f"{model_name(record['model'])}\nE {e[row]:.1f}  A {a[row]:.2f}\n"
                                   f"→ {'anomaly' if flags[row] else 'normal'}", fontsize=7)
    for ax in axes.flat:
        ax.set_axis_off()
    save_png(fig, path)


def _reconstruction_caption(run: FigureRun, normal: str, anomalous: str) -> str:
    seeds = sorted({r["seed"] for r in run.records})
    held = (f"held-out class {run.class_name!r}" if run.protocol == LEAVE_ONE_OUT
            else f"normal class {run.class_name!r}")
    return (f"{dataset_name(run.dataset)}, {run.protocol}, {held}, seed {'/'.join(map(str, seeds))}: "
            f"top row an anomalous test image ({anomalous!r}), bottom row a normal one ({normal!r}), "
            "each the first of its class in the test split. E = negative ELBO (score `elbo`), "
            "A = ‖x − x̂‖₂ (score `recon`, Eq. 17), both in marginal mode (minimum over the training "
            "conditions; no test label). The reconstruction is the decoder's mean at the posterior "
            "mean under the condition with the smallest A. → = the detector's verdict at its "
            "calibrated threshold (its own headline score). Bottom rows: each model's anomaly map of "
            "the two images (squared reconstruction error per pixel, over the input in the inferno "
            "colours, one colour scale for the figure): where the model finds the image odd.")

