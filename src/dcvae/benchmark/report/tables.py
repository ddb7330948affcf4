"""The report's sections made from the records alone: header, Table I side by side with the
paper's, every score, one-class, settings and runs, AUC per class, mean ROC curves, and how to read
the numbers."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dcvae.benchmark.grid import parse_config
from dcvae.benchmark.report.context import (
    DATASET_ORDER,
    LEAVE_ONE_OUT,
    _aucs,
    _Context,
    _dataset_rank,
    _datasets,
    _first_line,
    _group,
    _index_key,
    _label_order,
    _mean_std,
    _minutes,
    _model_rank,
    _pct,
    _slug,
    class_count,
    coverage,
    dataset_name,
    model_name,
    plot_text,
    save_png,
    score_auc,
    setting,
)
from dcvae.benchmark.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from dcvae.benchmark.runner import CONFIG_COPY, ROC_GRID
from dcvae.benchmark.store import RESULTS_FILE
from dcvae.config import ConfigError


class PaperAnchor(NamedTuple):
    """One cell of the paper's Table I: AUC in %, training minutes on the authors' machine if given."""

    auc: float
    minutes: float | None = None


#: The paper's Table I, model → dataset → anchor. The paper gives training minutes for dCVAE only;
#: beta-TCVAE is not in the paper. "emnist-byclass" is the paper's EMNIST (62 classes).
PAPER_TABLE_I: dict[str, dict[str, PaperAnchor]] = {
    "dcvae": {"mnist": PaperAnchor(88.31, 37), "fmnist": PaperAnchor(88.63, 44),
              "emnist-byclass": PaperAnchor(78.98, 102), "kmnist": PaperAnchor(61.02, 95)},
    "vae": {"mnist": PaperAnchor(88.21), "fmnist": PaperAnchor(84.12),
            "emnist-byclass": PaperAnchor(67.23), "kmnist": PaperAnchor(51.13)},
    "cvae": {"mnist": PaperAnchor(87.57), "fmnist": PaperAnchor(83.31),
             "emnist-byclass": PaperAnchor(66.01), "kmnist": PaperAnchor(42.35)},
    "factorvae": {"mnist": PaperAnchor(87.11), "fmnist": PaperAnchor(82.78),
                  "emnist-byclass": PaperAnchor(62.91), "kmnist": PaperAnchor(49.23)},
    "beta-vae": {"mnist": PaperAnchor(85.31), "fmnist": PaperAnchor(82.31),
                 "emnist-byclass": PaperAnchor(65.12), "kmnist": PaperAnchor(50.01)},
    "rfvae": {"mnist": PaperAnchor(85.31), "fmnist": PaperAnchor(81.11),
              "emnist-byclass": PaperAnchor(55.03), "kmnist": PaperAnchor(49.51)},
}
#: The paper's training settings (Section IV.D): at least 50 epochs; batch size and the primary /
#: secondary (discriminator) learning rates per dataset.
PAPER_MIN_EPOCHS = 50
PAPER_SETTINGS: dict[str, dict[str, float]] = {
    "mnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "fmnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "kmnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "emnist-byclass": {"batch_size": 128, "lr": 1e-6, "secondary_lr": 1e-5},
}


# ============================================================================ 1. header

def header_section(ctx: _Context, command: str | None) -> list[Block]:
    description = (ctx.config_raw or {}).get("description") or ""
    benchmark_command = command or _command_from_config(ctx.config_text)
    report_command = f"dcvae report {ctx.directory}" + (f" --data-dir {ctx.data_dir}" if ctx.data_dir else "")
    if ctx.max_samples != 2000:
        report_command += f" --max-samples {ctx.max_samples}"
    versions = sorted({str(r.get("library_version", "?")) for r in ctx.records})
    items = [
        f"Results: `{ctx.directory / RESULTS_FILE}`, {len(ctx.records)} records "
        f"({len(ctx.ok)} finished, {len(ctx.records) - len(ctx.ok)} diverged).",
        f"Report made from commit `{git_commit()}` with `{report_command}`.",
        f"Benchmark command: `{benchmark_command}`." if benchmark_command else
        f"Benchmark command: not recorded (the grid is `{ctx.directory / CONFIG_COPY}`: "
        f"`dcvae benchmark CONFIG --out {ctx.directory}`).",
        f"dcvae version of the runs: {', '.join(versions)}.",
        *(f"Hardware: {line}" for line in _hardware_lines(ctx.records)),
    ]
    if ctx.config_problem:
        items.append(f"Grid config: {ctx.config_problem}.")
    blocks: list[Block] = [Heading(1, f"Benchmark report: {ctx.config_name}")]
    if description:
        blocks.append(Paragraph(description))
    blocks.append(Bullets(tuple(items)))
    return blocks


def _command_from_config(text: str) -> str | None:
    """A ``dcvae benchmark ...`` line in the config's comments (the grid files name their command)."""
    for line in text.splitlines():
        found = re.search(r"(dcvae benchmark \S.*)$", line.lstrip("# ").strip())
        if line.lstrip().startswith("#") and found:
            return found.group(1)
    return None


def git_commit() -> str:
    """The short commit of the code making the report, '+ local changes' if the tree is dirty."""
    where = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + local changes" if dirty else commit or "unknown"


def _hardware_lines(records: list[dict[str, Any]]) -> list[str]:
    machines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        hw = r.get("hardware") or {}
        name = (f"{hw.get('cpu', '?')}, {hw.get('cpu_cores', '?')} cores"
                + (f", GPU {hw['gpu']}" if hw.get("gpu") else "") + f", torch {hw.get('torch', '?')}")
        machines[name].append(hw)
    lines = []
    for name, hws in machines.items():
        threads = sorted({int(h.get("torch_threads", 0)) for h in hws})
        hosts = sorted({str(h.get("host", "?")) for h in hws})
        lines.append(f"{name}; {'/'.join(map(str, threads))} torch thread(s) per run; "
                     f"host {', '.join(hosts)}; {len(hws)} runs")
    return lines


# ============================================================================ 2. Table I

def table_one_section(ctx: _Context) -> list[Block]:
    loo = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT]
    blocks: list[Block] = [Heading(2, "Table I, side by side (leave-one-out)")]
    if not loo:
        return [*blocks, Paragraph("No finished leave-one-out runs: nothing to set against Table I.")]
    datasets = sorted({*DATASET_ORDER, *(r["dataset"] for r in loo)}, key=_dataset_rank)
    models = sorted({*PAPER_TABLE_I, *(r["model"] for r in loo)}, key=_model_rank)
    header = ["Model"]
    for d in datasets:
        header += [f"{dataset_name(d)} ours", f"{dataset_name(d)} paper"]
    rows = []
    for model in models:
        labels = _label_order(ctx, [r for r in loo if r["model"] == model]) or [model_name(model)]
        for label in labels:
            row = [label]
            for d in datasets:
                runs = [r for r in loo if r["model"] == model and r["dataset"] == d
                        and ctx.labels[r["key"]] == label]
                anchor = PAPER_TABLE_I.get(model, {}).get(d)
                row += [_mean_std(_aucs(runs)), "—" if anchor is None else f"{anchor.auc:.2f}"]
            rows.append(tuple(row))
    blocks.append(Table(tuple(header), tuple(rows),
                        f"ROC-AUC × 100, headline score `{ctx.headline()}`, mean ± std (ddof 0) over "
                        "held-out classes and seeds; paper = Table I of the paper (beta-TCVAE is not "
                        "in it). Coverage and times below."))
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


def runs_section(ctx: _Context) -> list[Block]:
    """Settings, epochs actually run, and whether every run of the grid finished."""
    blocks: list[Block] = [Heading(2, "Settings and runs")]
    common, per_label = _settings_summary(ctx)
    blocks.append(Paragraph("Settings of every run: " + (", ".join(f"`{k}={v}`" for k, v in common.items())
                                                         or "none in common") + "."))
    if per_label:
        blocks.append(Table(("Model", "own settings"),
                            tuple((label, ", ".join(f"`{k}={v}`" for k, v in s.items()))
                                  for label, s in per_label.items())))
    epoch_rows = []
    for (d, protocol), group in sorted(_group(ctx.ok, "dataset", "protocol").items(),
                                       key=lambda kv: (_dataset_rank(kv[0][0]), kv[0][1])):
        for label in _label_order(ctx, group):
            runs = [r for r in group if ctx.labels[r["key"]] == label]
            ran = [int(r.get("epochs_run", 0)) for r in runs]
            best = [int(r.get("best_epoch", 0)) for r in runs if r.get("best_epoch") is not None]
            epoch_rows.append((dataset_name(d), protocol, label,
                               _span({setting(r, "epochs") for r in runs}),
                               _span(ran), _span(best), _span({r.get("n_train") for r in runs})))
    if epoch_rows:
        blocks.append(Table(("Dataset", "Protocol", "Model", "epochs set", "epochs run", "best epoch",
                             "training images"), tuple(epoch_rows),
                            "Epochs run < epochs set: early stopping on the validation loss (`patience`)."))
    blocks.append(Bullets(tuple(_completion_lines(ctx))))
    return blocks


def _span(values: Iterable[Any]) -> str:
    numbers = sorted(v for v in values if isinstance(v, (int, float)))
    if not numbers:
        return "—"
    return f"{numbers[0]}" if numbers[0] == numbers[-1] else f"{numbers[0]}–{numbers[-1]}"


def _settings_summary(ctx: _Context) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings every record shares, each row label's remaining settings)."""
    all_settings = [r.get("settings", {}) for r in ctx.records]
    keys = set().union(*all_settings)
    common = {k: all_settings[0][k] for k in sorted(keys)
              if all(k in s and s[k] == all_settings[0].get(k) for s in all_settings)}
    per_label: dict[str, dict[str, Any]] = {}
    for label in _label_order(ctx, ctx.records):
        runs = [r for r in ctx.records if ctx.labels[r["key"]] == label]
        own: dict[str, Any] = {}
        for k in sorted(keys - set(common)):
            values = {json.dumps(r.get("settings", {}).get(k)) for r in runs}
            if values != {"null"}:
                own[k] = " / ".join(sorted(values))
        if own:
            per_label[label] = own
    return common, per_label


def _completion_lines(ctx: _Context) -> list[str]:
    lines = []
    expected = _expected_keys(ctx)
    done = {r["key"] for r in ctx.records}
    if isinstance(expected, str):
        lines.append(f"Grid size unknown: {expected}.")
    else:
        missing = [label for key, label in expected.items() if key not in done]
        lines.append(f"The grid has {len(expected)} runs; {len(set(expected) & done)} have a record"
                     + (f", {len(missing)} have none yet (not run or still running): "
                        + "; ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
                        if missing else ": all runs finished."))
        extra = len(done - set(expected))
        if extra:
            lines.append(f"{extra} records belong to runs no longer in the grid (an earlier config); "
                         "they are included in the tables.")
        if ctx.superseded:
            lines.append(f"{len(ctx.superseded)} records of the store belong to runs no longer in the "
                         "grid (made under an earlier config); they are left out of every table: "
                         + "; ".join(_run_label(r) for r in ctx.superseded[:10])
                         + (" …" if len(ctx.superseded) > 10 else ""))
    diverged = [r for r in ctx.records if r.get("status") != "ok"]
    if diverged:
        lines.append(f"{len(diverged)} run(s) diverged (no metrics; left out of every mean): "
                     + "; ".join(f"{_run_label(r)}: {_first_line(str(r.get('error', '?')))[:160]}"
                                 for r in diverged[:20]))
    else:
        lines.append("No run diverged.")
    no_auc = [r for r in ctx.ok if score_auc(r) is None]
    if no_auc:
        lines.append(f"{len(no_auc)} finished run(s) had non-finite headline scores (no AUC; left out): "
                     + "; ".join(_run_label(r) for r in no_auc[:20]))
    return lines


def _expected_keys(ctx: _Context) -> dict[str, str] | str:
    """The grid's run keys (from the config copy) → a readable label, or why they are unknown."""
    if ctx.config_raw is None:
        return ctx.config_problem

    def count(name: str) -> int:
        n = class_count(name)
        if n is None:
            raise ValueError(f"the class count of {name} is unknown here")
        return n

    try:
        config = parse_config(ctx.config_raw, class_count=count, text=ctx.config_text,
                              where=CONFIG_COPY)
    except (ConfigError, ValueError, TypeError) as err:
        return f"{CONFIG_COPY} could not be read with this version ({_first_line(err)})"
    return {spec.key: spec.label for spec in config.runs}


def _run_label(r: dict[str, Any]) -> str:
    return (f"{r.get('model')} {r.get('dataset')} {r.get('protocol')} class {r.get('class')} "
            f"seed {r.get('seed')}")


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
        blocks.append(Image(path, f"{dataset_name(d)}, {protocol}: AUC per {role} (mean over seeds); "
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
        for label in _label_order(ctx, [r for r in loo if r["dataset"] == d]):
            runs = [r for r in loo if r["dataset"] == d and ctx.labels[r["key"]] == label]
            tprs = [r["metrics"][r["scores"][0]]["roc_tpr"] for r in runs
                    if "roc_tpr" in r.get("metrics", {}).get(r["scores"][0], {})]
            if tprs:
                curves[label] = (np.mean(np.asarray(tprs, dtype=float), axis=0),
                                 float(np.mean(_aucs(runs) or [np.nan])), len(tprs))
        if not curves:
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
        blocks.append(Image(path, f"{dataset_name(d)}: mean of the runs' ROC curves (TPR at 51 fixed "
                                  f"FPRs), headline score `{ctx.headline()}`; dashed = chance."))
    return blocks


# ============================================================================ 8. honesty

def honesty_section(ctx: _Context) -> list[Block]:
    """What the reader must know before comparing with the paper, generated from the records."""
    items = [*_protocol_lines(ctx), *_note_lines(ctx), *_training_lines(ctx), *_coverage_lines(ctx)]
    below_paper, below_baselines = _shortfall_lines(ctx)
    blocks: list[Block] = [Heading(2, "How to read these numbers"), Bullets(tuple(items)),
                           Heading(3, "Where our numbers fall below the paper's")]
    anchored = [r for r in ctx.ok if r["protocol"] == LEAVE_ONE_OUT and r["dataset"] in DATASET_ORDER]
    blocks.append(Bullets(tuple(below_paper)) if below_paper else Paragraph(
        "Nowhere: every model × dataset mean with a paper anchor is at or above it." if anchored else
        "No leave-one-out run is on a dataset of the paper's Table I: nothing to compare."))
    blocks.append(Heading(3, "Where dCVAE falls below a baseline"))
    blocks.append(Bullets(tuple(below_baselines)) if below_baselines else
                  Paragraph("Nowhere: on every dataset with dCVAE runs, its mean AUC is at least every "
                            "baseline's."))
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
                 "tabulated above.")
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
        for label, _, ours in (row for row in rows if row[1] == "dcvae"):
            below_baselines += [f"{dataset_name(d)}: {label} {ours:.2f} < {other} {theirs:.2f}"
                                for other, model, theirs in rows
                                if model != "dcvae" and round(theirs, 2) > round(ours, 2)]
    return below_paper, below_baselines
