"""How to read the numbers: the protocol, the notes of the data, training against the paper's,
coverage, and where our numbers fall below the paper's and a dCVAE row below a baseline — all
generated from the records."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from dcvae.report.context import (
    DATASET_ORDER,
    LEAVE_ONE_OUT,
    _aucs,
    _Context,
    _dataset_rank,
    _datasets,
    _group,
    _label_order,
    _model_rank,
    class_count,
    dataset_name,
    model_name,
    setting,
)
from dcvae.report.document import Block, Bullets, Heading, Paragraph
from dcvae.report.paper import PAPER_EVALUATION, PAPER_MIN_EPOCHS, PAPER_SETTINGS, PAPER_TABLE_I
from dcvae.report.runs import _span

# ============================================================================ 8. honesty

def honesty_section(ctx: _Context) -> list[Block]:
    """What the reader must know before comparing with the paper, generated from the records."""
    items = [*_protocol_lines(ctx), *_choice_lines(ctx), *_note_lines(ctx), *_training_lines(ctx),
             *_coverage_lines(ctx), *_paper_lines(ctx)]
    below_paper, below_baselines = _shortfall_lines(ctx)
    blocks: list[Block] = [Heading(2, "How to read these numbers"), Bullets(tuple(items)),
                           Heading(3, "Where our numbers fall below the paper's")]
    anchored = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT and r["dataset"] in DATASET_ORDER]
    blocks.append(Bullets(tuple(below_paper)) if below_paper else Paragraph(
        "Nowhere: every model × dataset mean with a paper anchor is at or above it." if anchored else
        "No leave-one-out run is on a dataset of the paper's Table I: nothing to compare."))
    blocks.append(Heading(3, "Where a dCVAE row falls below a baseline"))
    blocks.append(Bullets(tuple(below_baselines)) if below_baselines else
                  Paragraph("Nowhere: on every dataset with dCVAE runs, each dCVAE row's mean AUC is at "
                            "least every baseline's."))
    return blocks


def _protocol_lines(ctx: _Context) -> list[str]:
    protocols = {r["protocol"] for r in ctx.records}
    lines = []
    if LEAVE_ONE_OUT in protocols:
        lines.append("Protocol leave-one-out: for held-out class k, train on the training images of "
                     "every other class with c = their class, test on the whole test split (label 1 = "
                     "class k). The paper does not state its protocol; this is the reading its numbers "
                     "most plausibly come from.")
    if "one-class" in protocols:
        lines.append("Protocol one-class: train on class k only (c constant, so CVAE ≡ VAE), test on the "
                     "whole test split (label 1 = every other class).")
    modes = sorted({str(r.get("condition_mode")) for r in ctx.ok if r.get("condition_mode")})
    if "marginal" in modes:
        lines.append("Conditional models are scored in marginal mode: the score is the minimum over every "
                     "training condition, so no test label is used "
                     f"(condition modes in the records: {', '.join(modes)}).")
    headline = ctx.headline()
    lines.append(f"Headline score: `{headline}`" + (" (Eq. 17, the paper's A)" if headline == "recon" else "")
                 + "; the paper does not say which score its AUCs use, so every recorded score is "
                 "tabulated above."
                 + (f" The runs that recorded {', '.join(f'`{s}`' for s in ctx.preferred_headline)} are "
                    "read with it as their headline (`dcvae report --headline`), in place of their "
                    "grid's first score." if ctx.preferred_headline else ""))
    return lines


def _choice_lines(ctx: _Context) -> list[str]:
    """Which datasets chose the settings (the grid's ``chosen_on``) and which only test them."""
    chosen = (ctx.config_raw or {}).get("chosen_on") or []
    if not chosen:
        return []
    tested = [d for d in _datasets(ctx.ok) if d not in chosen]
    return [f"Settings and default scores were chosen on the *validation* AUC of "
            f"{', '.join(dataset_name(d) for d in chosen)} (the normal validation carve against the "
            "held-out class's training images, never the test split)"
            + (f"; {', '.join(dataset_name(d) for d in tested)} only test them." if tested else ".")]


def _paper_lines(ctx: _Context) -> list[str]:
    """The paper's evaluation, and how our one-class numbers compare with its Table I."""
    lines = [PAPER_EVALUATION]
    one_class = [r for r in ctx.ok if r["protocol"] == "one-class" and r["model"] in PAPER_TABLE_I]
    compared = []
    for (model, d), group in sorted(_group(one_class, "model", "dataset").items()):
        anchor = PAPER_TABLE_I[model].get(d)
        aucs = _aucs(group)
        if anchor is not None and aucs:
            compared.append(f"{model_name(model)} {dataset_name(d)} {100 * float(np.mean(aucs)):.2f} "
                            f"(paper {anchor.auc:.2f})")
    if compared:
        lines.append("One-class means against the paper's Table I (normal = one class; the paper names "
                     "no protocol): " + "; ".join(compared) + ".")
    return lines


def _note_lines(ctx: _Context) -> list[str]:
    notes: dict[str, set[str]] = defaultdict(set)
    for r in ctx.records:
        for note in r.get("notes") or []:
            notes[r["dataset"]].add(str(note))
    return [note for d in sorted(notes, key=_dataset_rank) for note in sorted(notes[d])]


def _training_lines(ctx: _Context) -> list[str]:
    lines = []
    for d in _datasets(ctx.ok):
        runs = [r for r in ctx.ok if r["dataset"] == d]
        ran = [int(r.get("epochs_run", 0)) for r in runs]
        set_ = {setting(r, "epochs") for r in runs}
        vs = ("below" if max(ran) < PAPER_MIN_EPOCHS else "at or above" if min(ran) >= PAPER_MIN_EPOCHS
              else "partly below")
        line = (f"{dataset_name(d)}: epochs set {_span(set_)}, run {_span(ran)} — {vs} the paper's "
                f"minimum of {PAPER_MIN_EPOCHS}")
        used = {key: _span({setting(r, key) for r in runs})
                for key in ("batch_size", "lr", "secondary_lr")}
        paper = PAPER_SETTINGS.get(d)
        line += "; " + ", ".join(f"{key} {value}" for key, value in used.items())
        if paper is not None:
            line += " (paper: " + ", ".join(f"{key} {paper[key]:g}" for key in used) + ")"
        sizes = {int(r["n_train"]) for r in runs if isinstance(r.get("n_train"), int)}
        if any("train_size" in r.get("settings", {}) for r in runs):
            line += f"; trained on a subsample of {_span(sizes)} normal images (`train_size`)"
        lines.append(line + ".")
    architecture = {tuple(str(setting(r, key)) for key in ("backbone", "hidden_dims", "latent_dim"))
                    for r in ctx.records}
    lines.append("Architecture (the paper does not give one): "
                 + "; ".join(f"{b} backbone, hidden_dims {h}, latent_dim {d}"
                             for b, h, d in sorted(architecture)) + ".")
    lines.append("Training times are ours on the hardware in the header, not the authors' machine.")
    return lines


def _coverage_lines(ctx: _Context) -> list[str]:
    partial = []
    for (d, protocol, model), group in sorted(_group(ctx.ok, "dataset", "protocol", "model").items(),
                                              key=lambda kv: (_dataset_rank(kv[0][0]), kv[0][1],
                                                              _model_rank(kv[0][2]))):
        total = class_count(d)
        n = len({r["class"] for r in group})
        if total is not None and n < total:
            partial.append(f"{model_name(model)} on {dataset_name(d)} ({protocol}): {n} of {total} classes")
    if not partial:
        return ["Every model × dataset mean covers every class of its dataset."]
    return ["Means over a subset of classes are not comparable with the paper's all-class means: "
            + "; ".join(partial) + "."]


def _shortfall_lines(ctx: _Context) -> tuple[list[str], list[str]]:
    loo = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT]
    means: dict[tuple[str, str], tuple[str, float]] = {}  # (dataset, label) → (model, mean AUC %)
    for (d,), group in _group(loo, "dataset").items():
        for label in _label_order(ctx, group):
            runs = [r for r in group if ctx.labels[r["key"]] == label]
            aucs = _aucs(runs)
            if aucs:
                means[(d, label)] = (runs[0]["model"], 100 * float(np.mean(aucs)))
    below_paper = []
    for (d, label), (model, ours) in sorted(means.items(), key=lambda kv: (_dataset_rank(kv[0][0]),
                                                                           _model_rank(kv[1][0]))):
        anchor = PAPER_TABLE_I.get(model, {}).get(d)
        if anchor is not None and ours < anchor.auc:
            below_paper.append(f"{label} on {dataset_name(d)}: {ours:.2f} vs the paper's {anchor.auc:.2f} "
                               f"({ours - anchor.auc:+.2f})")
    below_baselines = []
    for d in _datasets(loo):
        rows = sorted(((label, model, auc) for (d2, label), (model, auc) in means.items() if d2 == d),
                      key=lambda row: (_model_rank(row[1]), row[0]))
        # every dCVAE row (the SPEC's and its variants) against every row that is not one
        for label, _, ours in (row for row in rows if row[1].startswith("dcvae")):
            below_baselines += [f"{dataset_name(d)}: {label} {ours:.2f} < {other} {theirs:.2f}"
                                for other, model, theirs in rows
                                if not model.startswith("dcvae") and round(theirs, 2) > round(ours, 2)]
    return below_paper, below_baselines
