"""Table I side by side with the paper's, every recorded score, and the one-class tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from dcvae.report.context import (
    LEAVE_ONE_OUT,
    _aucs,
    _Context,
    _datasets,
    _label_order,
    _mean_std,
    _minutes,
    _model_rank,
    _pct,
    coverage,
    dataset_name,
    model_name,
)
from dcvae.report.document import Block, Heading, Paragraph, Table
from dcvae.report.paper import PAPER_TABLE_I

# ============================================================================ 2. Table I

def table_one_section(ctx: _Context) -> list[Block]:
    loo = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT]
    blocks: list[Block] = [Heading(2, "Table I, side by side (leave-one-out)")]
    if not loo:
        return [*blocks, Paragraph("No finished leave-one-out runs: nothing to set against Table I.")]
    datasets = _datasets(loo)
    models = sorted({r["model"] for r in loo}, key=_model_rank)  # the rows this grid ran, no empty ones
    header = ["Model"]
    for d in datasets:
        header += [f"{dataset_name(d)} ours", f"{dataset_name(d)} paper"]
    cells: list[tuple[str, str, list[list[float]]]] = []
    for model in models:
        labels = _label_order(ctx, [r for r in loo if r["model"] == model]) or [model_name(model)]
        for label in labels:
            cells.append((model, label, [_aucs(r for r in loo if r["model"] == model and r["dataset"] == d
                                               and ctx.labels[r["key"]] == label) for d in datasets]))
    best = [max((float(np.mean(a[i])) for _, _, a in cells if a[i]), default=None)
            for i in range(len(datasets))]
    rows = []
    for model, label, per_dataset in cells:
        row = [label]
        for i, d in enumerate(datasets):
            anchor = PAPER_TABLE_I.get(model, {}).get(d)
            text = _mean_std(per_dataset[i])
            if per_dataset[i] and float(np.mean(per_dataset[i])) == best[i]:
                text = f"**{text}**"
            row += [text, "—" if anchor is None else f"{anchor.auc:.2f}"]
        rows.append(tuple(row))
    blocks.append(Table(tuple(header), tuple(rows),
                        f"ROC-AUC × 100, each row's headline score (`{ctx.headline()}`), mean ± std (ddof 0) "
                        "over held-out classes and seeds; **bold**: the best mean of each column; paper = "
                        "Table I of the paper (beta-TCVAE and the classical rows are not in it). Coverage "
                        "and times below; the paired comparison after them."))
    blocks.append(_coverage_table(ctx, loo))
    return blocks


def _coverage_table(ctx: _Context, loo: list[dict[str, Any]]) -> Table:
    rows = []
    for d in _datasets(loo):
        in_d = [r for r in loo if r["dataset"] == d]
        for label in _label_order(ctx, in_d):
            runs = [r for r in in_d if ctx.labels[r["key"]] == label]
            anchor = PAPER_TABLE_I.get(runs[0]["model"], {}).get(d)
            aucs = _aucs(runs)
            ours = 100 * float(np.mean(aucs)) if aucs else None
            delta = "—" if anchor is None or ours is None else f"{ours - anchor.auc:+.2f}"
            seconds = [float(r.get("train_seconds", 0.0)) for r in runs]
            rows.append((dataset_name(d), label, _mean_std(aucs),
                         "—" if anchor is None else f"{anchor.auc:.2f}", delta, coverage(runs),
                         _minutes(float(np.mean(seconds))), _minutes(sum(seconds)),
                         "—" if anchor is None or anchor.minutes is None else f"{anchor.minutes:.0f}"))
    return Table(("Dataset", "Model", "AUC ours", "AUC paper", "ours − paper", "runs",
                  "train min/run", "train min total", "paper min"), tuple(rows),
                 "Training minutes: ours = wall time of `fit` per run and summed over the runs, on "
                 "the hardware above; the paper's minutes (dCVAE only) are on the authors' machine.")


def score_choice_section(ctx: _Context) -> list[Block]:
    """Every recorded score's mean AUC, so that the choice of the headline score is visible."""
    return _score_tables(ctx, [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT],
                         "Every score (leave-one-out)")


def _score_tables(ctx: _Context, records: list[dict[str, Any]], title: str) -> list[Block]:
    if not records:
        return []
    blocks: list[Block] = [Heading(3, title)]
    for d in _datasets(records):
        in_d = [r for r in records if r["dataset"] == d]
        scores = sorted({s for r in in_d for s in r.get("metrics", {})},
                        key=lambda s: (s != in_d[0]["scores"][0], s))
        rows = []
        for label in _label_order(ctx, in_d):
            runs = [r for r in in_d if ctx.labels[r["key"]] == label]
            rows.append((label, *(_pct(float(np.mean(a))) if (a := _aucs(runs, s)) else "—"
                                  for s in scores), coverage(runs)))
        header = ("Model", *(f"{s} (headline)" if s == in_d[0]["scores"][0] else s for s in scores),
                  "runs")
        blocks.append(Table(header, tuple(rows),
                            f"{dataset_name(d)}: mean ROC-AUC × 100 of each anomaly score."))
    return blocks


def one_class_section(ctx: _Context) -> list[Block]:
    one_class = [r for r in ctx.ok if r["protocol"] == "one-class"]
    if not one_class:
        return []
    return [Heading(2, "One-class protocol"),
            Paragraph("Normal = one class, anomalies = every other class. The condition is constant, "
                      "so CVAE ≡ VAE here (the constant one-hot adds only a bias: differences between "
                      "the two are initialisation noise) and dCVAE is a VAE with a learned prior mean "
                      "and variance. The paper reports no one-class numbers."),
            *_score_tables(ctx, one_class, "Every score (one-class)")]
