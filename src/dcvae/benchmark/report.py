"""The benchmark report (``dcvae report DIR``): the paper's Table I side by side with ours, and its figures.

``write_report(DIR)`` reads what ``dcvae benchmark CONFIG --out DIR`` wrote and writes

- ``DIR/report.md``: tables in Markdown, figures linked from ``DIR/figures``;
- ``DIR/report.html``: the same document, self-contained (every figure a base64 PNG data URI);
- ``DIR/figures/*.png``: per-class AUC, mean ROC curves, and, from the saved detectors, the
  paper's Figures 1–2 (reconstructions with E and A), 3 (latent space) and 4–5 (2-D manifold).

Every number comes from the records; every statement about where our results fall short of the
paper's is generated from them, not written by hand. Figures that need saved models or dataset
files are skipped with a line saying why, never with a crash (a fresh clone has results, no models).
"""

from __future__ import annotations

import base64
import functools
import html
import inspect
import io
import json
import math
import re
import subprocess
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dcvae.benchmark.grid import parse_config
from dcvae.benchmark.runner import CONFIG_COPY, ROC_GRID
from dcvae.benchmark.store import RESULTS_FILE, ResultStore
from dcvae.config import ConfigError
from dcvae.data import DATASETS, DataFileError, DatasetNotFoundError, DatasetSplits, load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.models import VAE
from dcvae.persistence import ModelFileError
from dcvae.scoring import anomaly_scores

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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

MODEL_ORDER = ("dcvae", "vae", "cvae", "factorvae", "beta-vae", "rfvae", "beta-tcvae")
MODEL_NAMES = {"dcvae": "dCVAE", "vae": "VAE", "cvae": "CVAE", "factorvae": "FactorVAE",
               "beta-vae": "beta-VAE", "rfvae": "RFVAE", "beta-tcvae": "beta-TCVAE"}
DATASET_ORDER = ("mnist", "fmnist", "emnist-byclass", "kmnist")
DATASET_NAMES = {"mnist": "MNIST", "fmnist": "FMNIST", "emnist-byclass": "EMNIST ByClass",
                 "kmnist": "KMNIST"}
LEAVE_ONE_OUT = "leave-one-out"

FIGURES_DIR = "figures"
MAX_FIGURE_BYTES = 150_000
MANIFOLD_STEPS = 10  # a 10×10 grid of decoded images
MANIFOLD_SPAN = 2.5  # in prior standard deviations either side of the prior mean
MANIFOLD_CONDITIONS = 3  # conditional models: one grid for each of the first 3 conditions
UMAP_NEIGHBOURS = 15


# ============================================================================ the document
# The report is a list of blocks, rendered twice: to Markdown and to self-contained HTML.

@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str  # `code` spans are kept in Markdown and become <code> in HTML


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    path: Path  # a PNG under DIR/figures
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def render_markdown(blocks: Iterable[Block], directory: Path) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            cells = [block.header, tuple("---" for _ in block.header), *block.rows]
            lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
            out.append(("\n".join(lines)) + (f"\n\n*{block.caption}*" if block.caption else ""))
        else:
            out.append(f"![{block.caption}]({block.path.relative_to(directory).as_posix()})\n\n"
                       f"*{block.caption}*")
    return "\n\n".join(out) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left}th{background:#eee}
code{background:#f3f3f3;padding:0 .2em}figure{margin:1em 0}img{max-width:100%}
figcaption,.caption{font-style:italic;font-size:.9em;color:#444}"""


def render_html(blocks: Iterable[Block], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(c)}</th>" for c in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            caption = f'<p class="caption">{_inline(block.caption)}</p>' if block.caption else ""
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{caption}")
        else:
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block.caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>{_inline(block.caption)}'
                        "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


# ============================================================================ the entry point

def write_report(directory: str | Path, *, command: str | None = None, max_figure_samples: int = 2000,
                 data_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into a benchmark results directory.

    command: the ``dcvae benchmark`` command that produced the directory, shown in the header
        (otherwise taken from a comment of the config copy, if one names it).
    max_figure_samples: test samples (a seeded subsample) behind the latent-space figure and the
        choice of the manifold's two dimensions.
    data_dir: where dataset files are looked for first (the figures need the test images).

    Returns the paths under the keys ``markdown``, ``html`` and ``figures``.
    Raises FileNotFoundError (no directory or no results.jsonl) or ValueError (no records).
    """
    if max_figure_samples < 10:
        raise ValueError(f"max_figure_samples must be at least 10, got {max_figure_samples}")
    ctx = _Context.open(Path(directory), data_dir=data_dir, max_samples=max_figure_samples)
    blocks: list[Block] = [
        *header_section(ctx, command),
        *table_one_section(ctx),
        *score_choice_section(ctx),
        *one_class_section(ctx),
        *runs_section(ctx),
        *per_class_section(ctx),
        *roc_section(ctx),
        *reconstruction_section(ctx),
        *latent_section(ctx),
        *manifold_section(ctx),
        *honesty_section(ctx),
    ]
    paths = {"markdown": ctx.directory / "report.md", "html": ctx.directory / "report.html",
             "figures": ctx.figures}
    # plain writes: the report is derived data, regenerated at will
    paths["markdown"].write_text(render_markdown(blocks, ctx.directory), encoding="utf-8")
    paths["html"].write_text(render_html(blocks, f"dcvae benchmark report: {ctx.config_name}"),
                             encoding="utf-8")
    return paths


# ============================================================================ shared state

@dataclass
class _Context:
    """The records and the caches the sections share (datasets, detectors, posteriors)."""

    directory: Path
    records: list[dict[str, Any]]
    config_raw: dict[str, Any] | None
    config_text: str
    config_problem: str
    data_dir: str | Path | None
    max_samples: int
    labels: dict[str, str] = field(default_factory=dict)  # record key → row label
    _datasets: dict[str, DatasetSplits | str] = field(default_factory=dict)
    _detectors: dict[str, AnomalyDetector | str] = field(default_factory=dict)
    _encoded: dict[str, Encoded] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path, *, data_dir: str | Path | None, max_samples: int) -> _Context:
        if not directory.is_dir():
            raise FileNotFoundError(f"results directory {directory} does not exist")
        if not (directory / RESULTS_FILE).is_file():
            raise FileNotFoundError(f"{directory / RESULTS_FILE} does not exist: run "
                                    f"`dcvae benchmark CONFIG --out {directory}` first")
        records = ResultStore(directory).records()
        if not records:
            raise ValueError(f"{directory / RESULTS_FILE} holds no complete result records")
        text, raw, problem = "", None, ""
        try:
            text = (directory / CONFIG_COPY).read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            problem = f"{CONFIG_COPY} is missing"
        except tomllib.TOMLDecodeError as err:
            problem = f"{CONFIG_COPY} is not valid TOML ({err})"
        ctx = cls(directory, records, raw, text, problem, data_dir, max_samples)
        ctx.labels = row_labels(records)
        figures = ctx.figures
        figures.mkdir(exist_ok=True)
        for old in figures.glob("*.png"):  # the folder is the report's own: no stale figures
            old.unlink()
        return ctx

    @property
    def figures(self) -> Path:
        return self.directory / FIGURES_DIR

    @property
    def config_name(self) -> str:
        name = (self.config_raw or {}).get("name")
        return name if isinstance(name, str) else self.directory.name

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "ok"]

    def headline(self) -> str:
        names = sorted({r["scores"][0] for r in self.records if r.get("scores")})
        return "/".join(names) or "recon"

    def dataset(self, name: str) -> DatasetSplits | str:
        """The dataset, or the reason it cannot be had (never downloads: a report only reads)."""
        if name not in self._datasets:
            try:
                self._datasets[name] = load_dataset(name, self.data_dir, download=False)
            except (DatasetNotFoundError, DataFileError, ValueError, OSError) as err:
                self._datasets[name] = f"the {name} files are not available here ({_first_line(err)})"
        return self._datasets[name]

    def detector(self, record: dict[str, Any]) -> AnomalyDetector | str:
        """A run's saved detector, or why it did not load."""
        where = record["model_dir"]
        if where not in self._detectors:
            try:
                self._detectors[where] = AnomalyDetector.load(self.directory / where)
            except (ModelFileError, ValueError, OSError) as err:
                self._detectors[where] = f"the saved model `{where}` did not load ({_first_line(err)})"
        return self._detectors[where]

    def encoded(self, record: dict[str, Any], model: VAE, x: np.ndarray) -> Encoded:
        """Posteriors of the figure subsample, shared by Figure 3 and Figures 4–5."""
        key = record["model_dir"]
        if key not in self._encoded:
            self._encoded[key] = encode_marginal(model, x)
        return self._encoded[key]


def _first_line(err: BaseException | str) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def row_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each record's table row: the model's name, plus the settings that tell its variants apart
    when one results directory holds the same model with several settings (a tuning grid)."""
    labels: dict[str, str] = {}
    for model, group in _group(records, "model").items():
        name = model_name(model[0])
        variants = {json.dumps(r.get("settings", {}), sort_keys=True) for r in group}
        keys = sorted({k for r in group for k in r.get("settings", {})})
        varying = [k for k in keys if len({json.dumps(r.get("settings", {}).get(k)) for r in group}) > 1]
        for r in group:
            if len(variants) == 1 or not varying:
                labels[r["key"]] = name
            else:
                settings = r.get("settings", {})
                labels[r["key"]] = f"{name} [" + ", ".join(f"{k}={settings.get(k)}" for k in varying) + "]"
    return labels


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def _model_rank(model: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model)


def _dataset_rank(dataset: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER), dataset)


def _group(records: Iterable[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in keys)].append(r)
    return dict(groups)


def _label_order(ctx: _Context, records: Iterable[dict[str, Any]]) -> list[str]:
    """Row labels in the paper's model order."""
    pairs = {(ctx.labels[r["key"]], r["model"]) for r in records}
    return [label for label, _ in sorted(pairs, key=lambda p: (_model_rank(p[1]), p[0]))]


def _datasets(records: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({r["dataset"] for r in records}, key=_dataset_rank)


def score_auc(record: dict[str, Any], score: str | None = None) -> float | None:
    """A record's AUC for one score (default: its headline score); None when it has none."""
    value = (record.get("auc") if score is None
             else record.get("metrics", {}).get(score, {}).get("auc"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _aucs(records: Iterable[dict[str, Any]], score: str | None = None) -> list[float]:
    return [a for a in (score_auc(r, score) for r in records) if a is not None]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _mean_std(values: list[float]) -> str:
    """Mean ± standard deviation (ddof 0) over runs, in % like the paper."""
    if not values:
        return "—"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 100 else f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.3f}"


#: AnomalyDetector's defaults: what a run used for a setting its grid left out.
_DETECTOR_DEFAULTS = {name: p.default for name, p in inspect.signature(AnomalyDetector).parameters.items()
                      if p.default is not inspect.Parameter.empty}


def setting(record: dict[str, Any], key: str) -> Any:
    """The value a run used for a detector setting: the grid's, else the detector's default."""
    value = record.get("settings", {}).get(key, _DETECTOR_DEFAULTS.get(key))
    return list(value) if isinstance(value, tuple) else value


@functools.cache
def class_count(dataset: str) -> int | None:
    """The number of classes of a named dataset, without reading its image files if possible."""
    spec = DATASETS.get(dataset)
    names = getattr(spec, "class_names", None)
    if names:
        return len(names)
    try:  # e.g. the bundled digits: cheap to load
        return len(load_dataset(dataset, download=False).class_names)
    except (DatasetNotFoundError, DataFileError, ValueError):
        return None


def coverage(records: list[dict[str, Any]]) -> str:
    """'10 cls × 2 seeds', '2 of 10 cls × 1–2 seeds (partial)': which runs a mean stands on."""
    if not records:
        return "—"
    per_class = {k: len(g) for k, g in _group(records, "class").items()}
    seeds = sorted(set(per_class.values()))
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    total = class_count(records[0]["dataset"])
    n = len(per_class)
    cls_text = f"{n} cls" if total is None or n == total else f"{n} of {total} cls"
    partial = " (partial)" if total is not None and n < total else ""
    return f"{cls_text} × {seed_text} seed{'s' if seeds[-1] != 1 else ''}{partial}"


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

@dataclass(frozen=True)
class Encoded:
    """Marginal-mode posteriors of some inputs: for conditional models the condition that
    reconstructs best (the argmin of the recon score, as marginal scoring takes the minimum).

    mu: (n, d) posterior means; kl: (n, d) per-dimension KL to the prior at that condition;
    condition: (n,) condition indices, or None for unconditional models;
    reconstruction: (n, *input_shape) the decoder's mean at z = mu, in input units.
    """

    mu: np.ndarray
    kl: np.ndarray
    condition: np.ndarray | None
    reconstruction: np.ndarray


@torch.no_grad()
def encode_marginal(model: VAE, x: np.ndarray, batch_size: int = 1024) -> Encoded:
    """Posterior means and reconstructions at the best condition (marginal mode; no test label)."""
    model.eval()
    conditions = model.n_conditions if model.conditional else 1
    chunk = max(1, batch_size // conditions)
    mus, kls, best_c, recons = [], [], [], []
    for start in range(0, len(x), chunk):
        xb = model.prepare(torch.as_tensor(x[start:start + chunk]))
        b = xb.shape[0]
        xr = xb.repeat_interleave(conditions, dim=0)
        cr = (torch.arange(conditions, device=xb.device).repeat(b) if model.conditional else None)
        onehot = model.condition_onehot(cr, xr.shape[0])
        mu, logvar = model.encode(xr, onehot)
        x_hat = model.reconstruction(model.decode(mu, onehot))
        error = (xr - x_hat).flatten(1).norm(dim=1).view(b, conditions)  # Eq. 17 per condition
        pick = torch.arange(b, device=xb.device) * conditions + error.argmin(dim=1)
        c_pick = None if cr is None else cr[pick]
        mus.append(mu[pick])
        kls.append(model.kl_to_prior(mu[pick], logvar[pick], c_pick))
        recons.append(x_hat[pick] * model.input_scale + model.input_shift)
        if c_pick is not None:
            best_c.append(c_pick)
    return Encoded(torch.cat(mus).cpu().numpy(), torch.cat(kls).cpu().numpy(),
                   torch.cat(best_c).cpu().numpy() if best_c else None,
                   torch.cat(recons).cpu().numpy())


def anomaly_labels(run: FigureRun, y: np.ndarray) -> np.ndarray:
    """1 where a test sample is an anomaly under the run's protocol."""
    return (y == run.target_class if run.protocol == LEAVE_ONE_OUT else y != run.target_class).astype(int)


def _subsample(ctx: _Context, n: int) -> np.ndarray:
    """A seeded subsample of the test split, the same for every model of a dataset."""
    if n <= ctx.max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, ctx.max_samples, replace=False))


def plot_text(name: str, index: int) -> str:
    """A class name as a figure shows it: quoted, or '#index' where matplotlib's default font has
    no glyphs (KMNIST's hiragana); the tables and captions keep the real names."""
    return repr(name) if name.isascii() else f"#{index}"


def _index_key(class_names: Iterable[str]) -> str:
    """For a caption: which class each '#index' of a figure stands for, when a figure uses them."""
    names = list(class_names)
    if all(name.isascii() for name in names):
        return ""
    return " In the figure, #k is class k: " + ", ".join(f"#{k} {n!r}" for k, n in enumerate(names)) + "."


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

def latent_section(ctx: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figure 3: latent space")]
    saved, reason = _saved_runs_or_reason(ctx)
    if not saved:
        return [*blocks, Paragraph(f"Skipped: {reason}.")]
    for d, run in pick_figure_runs(saved).items():
        data = _test_images(ctx, run)
        if isinstance(data, str):
            blocks.append(Paragraph(f"{dataset_name(d)} skipped: {data}."))
            continue
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
    saved, reason = _saved_runs_or_reason(ctx)
    if not saved:
        return [*blocks, Paragraph(f"Skipped: {reason}.")]
    for d, run in pick_figure_runs(saved).items():
        data = _test_images(ctx, run)
        if isinstance(data, str):
            blocks.append(Paragraph(f"{dataset_name(d)} skipped: {data}."))
            continue
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


# ============================================================================ files

def save_png(fig: Figure, path: Path, dpi: int = 90) -> Path:
    """Write a figure as a small PNG: lower the resolution until it fits ``MAX_FIGURE_BYTES``."""
    data = b""
    for attempt in (dpi, 72, 60, 48):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=attempt)
        data = buffer.getvalue()
        if len(data) <= MAX_FIGURE_BYTES:
            break
    path.write_bytes(data)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


__all__ = ["PAPER_TABLE_I", "Encoded", "FigureRun", "PaperAnchor", "encode_marginal", "manifold_mosaics",
           "pick_figure_runs", "pick_reconstruction_runs", "relevant_dims", "render_html",
           "render_markdown", "row_labels", "write_report"]
