"""The paired comparison: each dCVAE row against every other row of Table I, over the same
(held-out class × seed) runs, with wins / ties / losses and a Wilcoxon signed-rank p-value."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from scipy.stats import wilcoxon

from dcvae.report.context import LEAVE_ONE_OUT, _Context, _datasets, _label_order, dataset_name, score_auc
from dcvae.report.document import Block, Heading, Paragraph, Table

#: Two AUCs closer than this (0.1 AUC points) count as a tie.
TIE = 1e-3


def paired_section(ctx: _Context) -> list[Block]:
    loo = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT and score_auc(r) is not None]
    labels = _label_order(ctx, loo)
    references = [label for label in labels if _model_of(ctx, loo, label).startswith("dcvae")]
    if not references or len(labels) < 2:
        return []
    blocks: list[Block] = [Heading(3, "Paired comparison (leave-one-out)"), Paragraph(
        "Each dCVAE row against every other row, on the runs both have (the same held-out class and "
        "seed): Δ = mean AUC difference × 100 (positive: dCVAE higher), W/T/L = the runs where the "
        f"dCVAE row wins, ties (|Δ| < {100 * TIE:.1f}) or loses, p = the two-sided Wilcoxon "
        "signed-rank test on the paired differences (scipy; — with fewer than 6 pairs or no "
        "difference at all).")]
    datasets = _datasets(loo)
    for reference in references:
        rows = []
        for other in labels:
            if other == reference:
                continue
            row = [other]
            for d in datasets:
                row.append(_cell(_paired(ctx, loo, d, reference, other)))
            rows.append(tuple(row))
        blocks.append(Table(("Other row", *(dataset_name(d) for d in datasets)), tuple(rows),
                            f"{reference} against every other row: Δ, W/T/L, p (runs paired)."))
    return blocks


def _model_of(ctx: _Context, records: list[dict[str, Any]], label: str) -> str:
    return next(r["model"] for r in records if ctx.labels[r["key"]] == label)


def _paired(ctx: _Context, records: list[dict[str, Any]], dataset: str, a: str, b: str) -> np.ndarray:
    """AUC differences a − b over the (class, seed) runs both rows have on ``dataset``."""
    def by_run(label: str) -> dict[tuple[int, int], float]:  # the records all have an AUC
        return {(r["class"], r["seed"]): cast(float, score_auc(r)) for r in records
                if r["dataset"] == dataset and ctx.labels[r["key"]] == label}
    first, second = by_run(a), by_run(b)
    common = sorted(set(first) & set(second))
    return np.array([first[k] - second[k] for k in common], dtype=float)


def _cell(diffs: np.ndarray) -> str:
    if not len(diffs):
        return "—"
    wins, losses = int(np.sum(diffs >= TIE)), int(np.sum(diffs <= -TIE))
    ties = len(diffs) - wins - losses
    p = "—"
    if len(diffs) >= 6 and np.any(diffs != 0):
        p = f"{wilcoxon(diffs).pvalue:.2g}"
    return f"{100 * diffs.mean():+.2f}, {wins}/{ties}/{losses}, p {p}"
