"""The report's figures from the saved detectors: the paper's Figures 1–2 (reconstructions with E
and A), 3 (latent space) and 4–5 (2-D manifold), and the choice of the runs they show."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dcvae.benchmark.report.context import (
    LEAVE_ONE_OUT,
    _Context,
    _datasets,
    _group,
    _index_key,
    _model_rank,
    _slug,
    dataset_name,
    encode_marginal,
    model_name,
    plot_text,
    save_png,
)
from dcvae.benchmark.report.document import Block, Heading, Image, Paragraph
from dcvae.data import DatasetSplits
from dcvae.detector import AnomalyDetector
from dcvae.models import VAE
from dcvae.scoring import anomaly_scores

MANIFOLD_STEPS = 10  # a 10×10 grid of decoded images
MANIFOLD_SPAN = 2.5  # in prior standard deviations either side of the prior mean
MANIFOLD_CONDITIONS = 3  # conditional models: one grid for each of the first 3 conditions
UMAP_NEIGHBOURS = 15


# ============================================================================ saved models: which runs

@dataclass(frozen=True, eq=False)
class FigureRun:
    """A (dataset, protocol, class) whose saved detectors a figure shows: one record per model.

    normal_class_name: for Figures 1–2, the class of the normal sample (None: the first other class).
    note: why this run was picked, when it is not the paper's choice.
    """

    dataset: str
    protocol: str
    target_class: int
    class_name: str
    records: tuple[dict[str, Any], ...]
    normal_class_name: str | None = None
    note: str = ""


def pick_figure_runs(records: list[dict[str, Any]]) -> dict[str, FigureRun]:
    """One run per dataset with saved models: the run of Figures 1–2 where there is one (EMNIST's
    "O"); otherwise leave-one-out first, then the held-out class with the most models saved (ties:
    the lowest class); each model at its lowest saved seed."""
    saved = _saved(records)
    runs = {d: _best_run([r for r in saved if r["dataset"] == d]) for d in _datasets(saved)}
    for run in pick_reconstruction_runs(records):  # Figures 3–5 show the models of Figures 1–2
        runs[run.dataset] = run
    return runs


def pick_reconstruction_runs(records: list[dict[str, Any]]) -> list[FigureRun]:
    """The runs of Figures 1–2, as in the paper where the saved models allow it.

    Figure 1: EMNIST ByClass leave-one-out with "O" held out; normal sample = digit "0".
    Figure 2: KMNIST leave-one-out, whichever held-out class has saved models.
    Without either: one run of the first dataset with saved models (MNIST, FMNIST, then others).
    """
    saved = _saved(records)
    emnist = [r for r in saved if r["dataset"] == "emnist-byclass" and r["protocol"] == LEAVE_ONE_OUT]
    kmnist = [r for r in saved if r["dataset"] == "kmnist" and r["protocol"] == LEAVE_ONE_OUT]
    runs = []
    held_out_o = [r for r in emnist if str(r.get("class_name")) == "O"]
    if held_out_o:
        run = _best_run(held_out_o)
        runs.append(FigureRun(run.dataset, run.protocol, run.target_class, run.class_name, run.records,
                              normal_class_name="0"))
    elif emnist:
        runs.append(_best_run(emnist, note="no saved EMNIST ByClass model held out \"O\" (the paper's "
                                           "Figure 1); this is another held-out class"))
    if kmnist:
        runs.append(_best_run(kmnist))
    if runs or not saved:
        return runs
    fallback = _datasets(saved)[0]
    return [_best_run([r for r in saved if r["dataset"] == fallback],
                      note=f"no saved EMNIST ByClass or KMNIST leave-one-out model (the paper's "
                           f"Figures 1–2): {dataset_name(fallback)} instead")]


def _saved(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished records with a saved model; when several name one model directory (a grid with
    two settings for one model × class × seed overwrites it), the last to finish saved it."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("model_dir"):
            old = latest.get(r["model_dir"])
            if old is None or str(r.get("finished_at", "")) >= str(old.get("finished_at", "")):
                latest[r["model_dir"]] = r
    return list(latest.values())


def _best_run(records: list[dict[str, Any]], note: str = "") -> FigureRun:
    protocols = {r["protocol"] for r in records}
    protocol = LEAVE_ONE_OUT if LEAVE_ONE_OUT in protocols else sorted(protocols)[0]
    by_class = _group([r for r in records if r["protocol"] == protocol], "class")
    (k,), group = max(by_class.items(), key=lambda kv: (len({r["model"] for r in kv[1]}), -kv[0][0]))
    per_model = {}
    for r in sorted(group, key=lambda r: r["seed"]):
        per_model.setdefault(r["model"], r)
    chosen = tuple(per_model[m] for m in sorted(per_model, key=_model_rank))
    return FigureRun(chosen[0]["dataset"], protocol, int(k), str(chosen[0].get("class_name", k)),
                     chosen, note=note)


def _loaded(ctx: _Context, run: FigureRun) -> tuple[list[tuple[dict[str, Any], AnomalyDetector]], list[str]]:
    """The run's detectors that load, and a note for each that does not."""
    out, notes = [], []
    for r in run.records:
        detector = ctx.detector(r)
        if isinstance(detector, str):
            notes.append(f"{model_name(r['model'])}: {detector}; left out.")
        else:
            out.append((r, detector))
    return out, notes


def _saved_runs_or_reason(ctx: _Context) -> tuple[list[dict[str, Any]], str]:
    """Records whose model directory exists, and why the model figures are skipped (none) or what
    they lack (some)."""
    named = _saved(ctx.records)
    present = [r for r in named if (ctx.directory / r["model_dir"] / "config.json").is_file()]
    if present:
        missing = len(named) - len(present)
        return present, (f"{missing} of the {len(named)} saved models the records name are missing "
                         "under `models/`; the figures show the others" if missing else "")
    if not named:
        return [], ("no run saved its model (`save_models = \"none\"` in the grid), so the figures "
                    "that need trained models are skipped")
    return [], (f"the records name {len(named)} saved models, but none is under "
                f"`{ctx.directory / 'models'}` (e.g. a fresh clone: models are not committed); the "
                "figures that need trained models are skipped")


def _test_images(ctx: _Context, run: FigureRun) -> DatasetSplits | str:
    data = ctx.dataset(run.dataset)
    if isinstance(data, str):
        return data
    if data.test.x.ndim != 4:
        return f"{run.dataset} is not an image dataset"
    return data


# ============================================================================ the models' own views

def anomaly_labels(run: FigureRun, y: np.ndarray) -> np.ndarray:
    """1 where a test sample is an anomaly under the run's protocol."""
    return (y == run.target_class if run.protocol == LEAVE_ONE_OUT else y != run.target_class).astype(int)


def _subsample(ctx: _Context, n: int) -> np.ndarray:
    """A seeded subsample of the test split, the same for every model of a dataset."""
    if n <= ctx.max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, ctx.max_samples, replace=False))


def _picture(arr: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] → what imshow takes: (H, W) for grayscale, (H, W, 3) for colour."""
    arr = np.clip(arr, 0.0, 1.0)
    return arr[0] if arr.shape[0] != 3 else arr.transpose(1, 2, 0)


# ============================================================================ 5. Figures 1–2

def reconstruction_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figures 1–2: reconstructions, E and A")]
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
        blocks.append(Image(path, _reconstruction_caption(run, data.class_names[normal],
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
    then each model's reconstruction titled with E (negative ELBO) and A (Eq. 17)."""
    cols = 1 + len(models)
    fig = Figure(figsize=(1.55 * cols, 4.2), layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    for row, role in enumerate(("anomalous", "normal")):
        axes[row, 0].imshow(_picture(x[row] / 255.0), cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(f"{role}\ninput {class_names[row]}", fontsize=7)
    for j, (record, detector) in enumerate(models, start=1):
        model = detector.model_
        assert model is not None
        encoded = encode_marginal(model, x)
        e = anomaly_scores(model, x, None, score="elbo")  # marginal mode: min over conditions
        a = anomaly_scores(model, x, None, score="recon")
        flags = detector.predict(x)
        for row in range(2):
            axes[row, j].imshow(_picture(encoded.reconstruction[row]), cmap="gray", vmin=0, vmax=1)
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
            "calibrated threshold (its own headline score).")


# ============================================================================ 6. Figure 3

def _runs_with_test_images(ctx: _Context, blocks: list[Block]
                           ) -> Iterator[tuple[str, FigureRun, DatasetSplits]]:
    """Each dataset's figure run with its test images; what cannot be drawn is said in ``blocks``."""
    saved, reason = _saved_runs_or_reason(ctx)
    if not saved:
        blocks.append(Paragraph(f"Skipped: {reason}."))
        return
    for d, run in pick_figure_runs(saved).items():
        data = _test_images(ctx, run)
        if isinstance(data, str):
            blocks.append(Paragraph(f"{dataset_name(d)} skipped: {data}."))
            continue
        yield d, run, data


def latent_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figure 3: latent space")]
    for d, run, data in _runs_with_test_images(ctx, blocks):
        index = _subsample(ctx, len(data.test))
        x, y = data.test.x[index], data.test.y[index]
        models, notes = _loaded(ctx, run)
        panels = []
        for record, detector in models:
            assert detector.model_ is not None
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
        blocks.append(Image(path, f"{dataset_name(d)}, {run.protocol}, {_role(run)}: posterior means "
                                  f"of {len(index)} test images (seeded subsample), coloured by class, "
                                  "anomalies marked with a black ×; conditional models at the condition "
                                  "with the smallest reconstruction error (marginal mode). Latent spaces "
                                  "of more than 2 dimensions are reduced with UMAP (15 neighbours, "
                                  "random_state 0)." + _index_key(data.class_names)))
    return blocks


def _role(run: FigureRun) -> str:
    if run.protocol == LEAVE_ONE_OUT:
        return f"held-out class {run.class_name!r}"
    return f"normal class {run.class_name!r}"


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
    for d, run, data in _runs_with_test_images(ctx, blocks):
        x = data.test.x[_subsample(ctx, len(data.test))]
        models, notes = _loaded(ctx, run)
        blocks.append(Heading(3, f"{dataset_name(d)}, {run.protocol}, {_role(run)}"))
        blocks += [Paragraph(n) for n in notes]
        for record, detector in models:
            model = detector.model_
            assert model is not None
            if model.config.latent_dim < 2:
                blocks.append(Paragraph(f"{model_name(record['model'])}: a 1-D latent has no 2-D manifold."))
                continue
            dims = relevant_dims(ctx.encoded(record, model, x).kl)
            panels = manifold_mosaics(model, dims)
            path = ctx.figures / f"manifold-{_slug(d)}-{_slug(record['model'])}.png"
            _plot_manifold(path, panels, f"{model_name(record['model'])}: z{dims[0]} (→) × z{dims[1]} (↑)")
            blocks.append(Image(path, _manifold_caption(model, record, dims, len(x))))
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
        images = model.reconstruction(model.decode(z, onehot)) * model.input_scale + model.input_shift
        images = images.clamp(0, 1).cpu().numpy()  # (steps², C, H, W)
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
