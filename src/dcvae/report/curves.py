"""AUC per class and the mean ROC curves, as tables and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dcvae.evaluation.metrics import ROC_GRID
from dcvae.report.context import (
    LEAVE_ONE_OUT,
    _aucs,
    _Context,
    _dataset_rank,
    _datasets,
    _group,
    _index_key,
    _label_order,
    _pct,
    _slug,
    dataset_name,
    plot_text,
    save_png,
)
from dcvae.report.document import Block, Heading, Paragraph, Table

# ============================================================================ 3. per-class AUC

def per_class_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "AUC per class")]
    for (d, protocol), group in sorted(_group(ctx.ok, "dataset", "protocol").items(),
                                       key=lambda kv: (_dataset_rank(kv[0][0]), kv[0][1])):
        labels = _label_order(ctx, group)
        classes = sorted({(r["class"], str(r.get("class_name", r["class"]))) for r in group})
        means: dict[str, list[float | None]] = {}
        for label in labels:
            means[label] = []
            for k, _ in classes:
                aucs = _aucs(r for r in group if r["class"] == k and ctx.labels[r["key"]] == label)
                means[label].append(float(np.mean(aucs)) if aucs else None)
        role = "held-out (anomalous) class" if protocol == LEAVE_ONE_OUT else "normal class"
        rows = tuple((name, *(_pct(means[label][i]) for label in labels))
                     for i, (_, name) in enumerate(classes))
        blocks.append(Heading(3, f"{dataset_name(d)}, {protocol}"))
        blocks.append(Table(("Class", *labels), rows,
                            f"Rows: the {role}; ROC-AUC × 100 of the headline score, mean over seeds."))
        path = ctx.figures / f"per-class-{_slug(d)}-{_slug(protocol)}.png"
        _plot_per_class(path, [plot_text(name, k) for k, name in classes], means,
                        f"{dataset_name(d)}, {protocol}")
        blocks.append(ctx.figure(path, f"{dataset_name(d)}, {protocol}: AUC per {role} (mean over seeds); "
                                  "dashed line = chance." + _index_key(name for _, name in classes)))
    return blocks


def _colour_cycle(ax: Any, n: int) -> None:
    """Distinct colours for up to 20 series (the default cycle repeats after 10)."""
    if n > 10:
        colours = matplotlib.colormaps["tab20"]
        ax.set_prop_cycle(color=[colours(i % 20) for i in range(n)])


def _legend(fig: Figure, ax: Any, n: int, inside: str) -> None:
    """A few series: legend inside the axes; many: beside them, where it hides no data."""
    if n <= 4:
        ax.legend(fontsize=7, loc=inside)
    else:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)


def _plot_per_class(path: Path, class_names: list[str], means: dict[str, list[float | None]],
                    title: str) -> None:
    width = max(6.0, 0.16 * len(class_names) + 3.0) + (0 if len(means) <= 4 else 2.0)
    fig = Figure(figsize=(width, 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(class_names))
    bars = len(class_names) <= 12  # bar groups while they stay readable, lines beyond
    bar_width = 0.8 / max(len(means), 1)
    _colour_cycle(ax, len(means))
    for i, (label, values) in enumerate(means.items()):
        y = np.array([np.nan if v is None else 100 * v for v in values])
        if bars:
            ax.bar(x - 0.4 + (i + 0.5) * bar_width, y, bar_width, label=label)
        else:
            ax.plot(x, y, marker="o", markersize=3, linewidth=1, label=label)
    ax.axhline(50, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, class_names, fontsize=7 if len(class_names) > 20 else 9)
    ax.set_ylim(0, 100)
    ax.set_ylabel("ROC-AUC (%)")
    ax.set_title(title, fontsize=10)
    _legend(fig, ax, len(means), "lower left")
    save_png(fig, path)


# ============================================================================ 4. ROC curves

def roc_section(ctx: _Context) -> list[Block]:
    loo = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT]
    if not loo:
        return []
    blocks: list[Block] = [Heading(2, "Mean ROC curves (leave-one-out)")]
    for d in _datasets(loo):
        curves: dict[str, tuple[np.ndarray, float, int]] = {}
        without: list[str] = []  # rows whose headline has no stored curve (read with --headline)
        for label in _label_order(ctx, [r for r in loo if r["dataset"] == d]):
            runs = [r for r in loo if r["dataset"] == d and ctx.labels[r["key"]] == label]
            tprs = [r["metrics"][r["scores"][0]]["roc_tpr"] for r in runs
                    if "roc_tpr" in r.get("metrics", {}).get(r["scores"][0], {})]
            if tprs:
                curves[label] = (np.mean(np.asarray(tprs, dtype=float), axis=0),
                                 float(np.mean(_aucs(runs) or [np.nan])), len(tprs))
            else:
                without.append(label)
        missing = (f"Not drawn: {', '.join(without)}, whose runs stored no curve of their headline "
                   "score (a run keeps the curve of its grid's first score only)." if without else "")
        if not curves:
            if without:
                blocks.append(Paragraph(f"{dataset_name(d)}: no ROC figure. {missing}"))
            continue
        path = ctx.figures / f"roc-{_slug(d)}.png"
        fig = Figure(figsize=(4.6 if len(curves) <= 4 else 7.8, 4.4), layout="constrained")
        ax = fig.subplots()
        _colour_cycle(ax, len(curves))
        for label, (tpr, auc, n) in curves.items():
            ax.plot(ROC_GRID, tpr, linewidth=1.2, label=f"{label} (AUC {100 * auc:.1f}, {n} runs)")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{dataset_name(d)}: mean ROC over classes and seeds", fontsize=10)
        _legend(fig, ax, len(curves), "lower right")
        save_png(fig, path)
        blocks.append(ctx.figure(path, f"{dataset_name(d)}: mean of the runs' ROC curves (TPR at 51 fixed "
                                  f"FPRs), headline score `{ctx.headline()}`; dashed = chance."
                                  + (f" {missing}" if missing else "")))
    return blocks
