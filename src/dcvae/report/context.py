"""What the report's sections share: the records and their caches (``_Context``), row labels,
grouping and formatting of records, and the writing of figure files. The models' posteriors come
from the library's scoring (``dcvae.scoring.explain``), never from code of the report's own."""

from __future__ import annotations

import functools
import io
import json
import math
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dcvae.benchmark.runner import CONFIG_COPY
from dcvae.benchmark.store import RESULTS_FILE, ResultStore
from dcvae.data import DATASETS, DataFileError, DatasetNotFoundError, DatasetSplits, load_dataset
from dcvae.detector import AnomalyDetector, default_settings
from dcvae.evaluation.protocols import FACTORS
from dcvae.io.model_dir import ModelFileError
from dcvae.models import VAE
from dcvae.report.document import Image
from dcvae.scoring import Explanation, explain

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


MODEL_ORDER = ("dcvae-prior", "dcvae", "vae", "cvae", "factorvae", "beta-vae", "rfvae", "beta-tcvae",
               "knn", "pca", "pca-gauss", "iforest", "ecod")
MODEL_NAMES = {"dcvae-prior": "dCVAE-prior", "dcvae": "dCVAE", "vae": "VAE", "cvae": "CVAE",
               "factorvae": "FactorVAE", "beta-vae": "beta-VAE", "rfvae": "RFVAE", "beta-tcvae": "beta-TCVAE",
               "knn": "kNN", "pca": "PCA", "pca-gauss": "PCA-Gauss", "iforest": "IForest", "ecod": "ECOD"}
DATASET_ORDER = ("mnist", "fmnist", "emnist-byclass", "kmnist")
DATASET_NAMES = {"mnist": "MNIST", "fmnist": "FMNIST", "emnist-byclass": "EMNIST ByClass",
                 "kmnist": "KMNIST", "dsprites": "dSprites"}
LEAVE_ONE_OUT = "leave-one-out"

FIGURES_DIR = "figures"
MAX_FIGURE_BYTES = 150_000


# ============================================================================ shared state

_MARKDOWN_IMAGE = re.compile(rf"^!\[(.*)\]\({FIGURES_DIR}/([^/)]+\.png)\)$", re.MULTILINE)


def _captions(report: Path) -> dict[str, str]:
    """Figure name → caption, as the report at ``report`` showed them (none if it is absent)."""
    try:
        text = report.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {name: caption for caption, name in _MARKDOWN_IMAGE.findall(text)}


#: how a kept figure's caption says so (once, however often the report is written again)
KEPT = "(Kept from an earlier report: "


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
    superseded: list[dict[str, Any]] = field(default_factory=list)  # records of runs no longer in the grid
    preferred_headline: tuple[str, ...] = ()  # write_report's headline: read in place of the grids'
    _datasets: dict[str, DatasetSplits | str] = field(default_factory=dict)
    _detectors: dict[str, AnomalyDetector | str] = field(default_factory=dict)
    _encoded: dict[str, Explanation] = field(default_factory=dict)
    _load: Callable[..., DatasetSplits] = load_dataset  # how dataset() loads (write_report passes it)
    # figure file name → caption: what the last report showed, and what this one shows
    previous_figures: dict[str, str] = field(default_factory=dict)
    shown_figures: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path, *, data_dir: str | Path | None, max_samples: int,
             load: Callable[..., DatasetSplits] = load_dataset, headline: tuple[str, ...] = ()) -> _Context:
        if not directory.is_dir():
            raise FileNotFoundError(f"results directory {directory} does not exist")
        if (directory / RESULTS_FILE).exists() and not (directory / RESULTS_FILE).is_file():
            raise ValueError(f"{directory / RESULTS_FILE} is not a file (a benchmark writes its "
                             "records there, one JSON object per line)")
        if not (directory / RESULTS_FILE).is_file():
            raise FileNotFoundError(f"{directory / RESULTS_FILE} does not exist: run "
                                    f"`dcvae benchmark CONFIG --out {directory}` first")
        stored = ResultStore(directory).records()
        records = [r for r in stored if _complete(r)]
        if len(records) < len(stored):  # a record edited by hand, or written by something else
            warnings.warn(f"{directory / RESULTS_FILE}: left out {len(stored) - len(records)} record(s) "
                          f"without the fields {list(RECORD_FIELDS)}", stacklevel=2)
        if not records:
            raise ValueError(f"{directory / RESULTS_FILE} holds no complete result records")
        if headline:
            unknown = [s for s in headline if not any(s in r.get("metrics", {}) for r in records)]
            if unknown:
                raise ValueError(f"--headline {unknown}: no record of {directory / RESULTS_FILE} recorded "
                                 f"{'that score' if len(unknown) == 1 else 'those scores'}")
            records = [with_headline(r, headline) for r in records]
        text, raw, problem = "", None, ""
        try:
            text = (directory / CONFIG_COPY).read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            problem = f"{CONFIG_COPY} is missing"
        except tomllib.TOMLDecodeError as err:
            problem = f"{CONFIG_COPY} is not valid TOML ({err})"
        ctx = cls(directory, records, raw, text, problem, data_dir, max_samples, _load=load)
        ctx.labels = row_labels(records)
        ctx.preferred_headline = headline
        ctx.figures.mkdir(exist_ok=True)
        # nothing is deleted before the report knows what it can redraw (finish() drops the rest)
        captions = _captions(directory / "report.md")
        ctx.previous_figures = {p.name: captions.get(p.name, "") for p in sorted(ctx.figures.glob("*.png"))}
        return ctx

    def figure(self, path: Path, caption: str) -> Image:
        """The block of a figure this report has just drawn at ``path``."""
        self.shown_figures[path.name] = caption
        return Image(path, caption)

    def keep_figures(self, prefix: str, why: str) -> list[Image]:
        """The figures named ``prefix*`` that the last report drew and this one cannot redraw
        (their saved models are not here): kept as they are, each caption saying so."""
        kept = []
        for name, caption in self.previous_figures.items():
            if name.startswith(prefix) and name not in self.shown_figures:
                caption = caption.split(KEPT)[0].rstrip()  # kept once before: say it once
                text = f"{caption} " if caption else ""
                kept.append(self.figure(self.figures / name, f"{text}{KEPT}{why}.)"))
        return kept

    def finish(self) -> None:
        """Remove the figures of the last report that this one neither drew nor kept (stale)."""
        for name in self.previous_figures.keys() - self.shown_figures.keys():
            (self.figures / name).unlink(missing_ok=True)

    @property
    def figures(self) -> Path:
        return self.directory / FIGURES_DIR

    @property
    def config_name(self) -> str:
        name = (self.config_raw or {}).get("name")
        return name if isinstance(name, str) else self.directory.name

    @property
    def ok(self) -> list[dict[str, Any]]:
        """The finished detection runs (a ``factors`` run detects nothing: see ``factor_runs``)."""
        return [r for r in self.records if r.get("status") == "ok" and r["protocol"] != FACTORS]

    @property
    def factor_runs(self) -> list[dict[str, Any]]:
        """The finished runs of the ``factors`` protocol, the disentanglement section's."""
        return [r for r in self.records if r.get("status") == "ok" and r["protocol"] == FACTORS]

    @property
    def detection(self) -> bool:
        """Whether the store holds detection runs, so the detection sections have anything to say."""
        return any(r["protocol"] != FACTORS for r in self.records)

    def headline(self) -> str:
        names = sorted({r["scores"][0] for r in self.records if r.get("scores")})
        return "/".join(names) or "recon"

    def dataset(self, name: str) -> DatasetSplits | str:
        """The dataset, or the reason it cannot be had (never downloads: a report only reads)."""
        if name not in self._datasets:
            try:
                self._datasets[name] = self._load(name, self.data_dir, download=False)
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

    def encoded(self, record: dict[str, Any], model: VAE, x: np.ndarray) -> Explanation:
        """Marginal-mode posteriors of the figure subsample (the library's ``explain``: at the
        condition with the smallest Eq. 17 error), shared by Figure 3 and Figures 4–5."""
        key = record["model_dir"]
        if key not in self._encoded:
            self._encoded[key] = explain(model, x)
        return self._encoded[key]


def _first_line(err: BaseException | str) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def row_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each record's table row: the model's name, plus the settings that tell its variants apart
    when one results directory holds the same model with several settings on one dataset (a
    tuning grid). Settings that differ only between datasets (the paper's EMNIST learning rates)
    do not split a row."""
    labels: dict[str, str] = {}
    for (model, _), group in _group(records, "model", "dataset").items():
        name = model_name(model)
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


def with_headline(record: dict[str, Any], preferred: tuple[str, ...]) -> dict[str, Any]:
    """The record with the first of ``preferred`` that it recorded as its headline score (first of
    its ``scores``, and its ``auc``, ``average_precision`` and ``f1``), as if its grid had listed it
    first; unchanged when it recorded none of them. Its ROC curve stays the grid's headline's."""
    metrics = record.get("metrics", {})
    score = next((s for s in preferred if s in metrics), None)
    if score is None or record.get("scores", [None])[0] == score:
        return record
    chosen = metrics[score]
    return {**record, "scores": [score, *(s for s in record.get("scores", []) if s != score)],
            **{k: chosen.get(k) for k in ("auc", "average_precision", "f1")}}


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
    """Mean ± standard deviation (ddof 0) over runs, in % like the paper; a single run has no spread
    to show (not "± 0.00")."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (1 run)"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 100 else f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.3f}"


#: The library's defaults (from its config dataclasses): what a run used for a setting its grid left out.
_DETECTOR_DEFAULTS = default_settings()


#: What a record without ``architecture`` (written before it existed: every VAE's default was then
#: the MLP) ran where its grid named no backbone.
_LEGACY_DEFAULTS = {"backbone": "mlp"}


def setting(record: dict[str, Any], key: str) -> Any:
    """The value a run used for a detector setting: the architecture it recorded, else the grid's,
    else the library's default (for records that predate ``architecture``, the default then)."""
    recorded = record.get("architecture") or {}
    value = recorded.get(key, record.get("settings", {}).get(
        key, _LEGACY_DEFAULTS.get(key, _DETECTOR_DEFAULTS.get(key))))
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


# ============================================================================ figure text

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


#: The fields every record the report reads must have, with their types.
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str, "dataset": str, "protocol": str, "class": int, "seed": int, "status": str}


def _complete(record: dict[str, Any]) -> bool:
    return all(isinstance(record.get(k), t) and not isinstance(record.get(k), bool)
               for k, t in RECORD_FIELDS.items())
