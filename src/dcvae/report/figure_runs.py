"""Which saved models the report's figures show, and what every figure shares: the test images,
the loaded detectors, the seeded subsample."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcvae.data import DatasetSplits
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.protocols import PROTOCOLS
from dcvae.models import MODELS
from dcvae.report.context import (
    LEAVE_ONE_OUT,
    _Context,
    _datasets,
    _group,
    _model_rank,
    dataset_name,
    model_name,
)
from dcvae.report.document import Block, Paragraph

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
    for r in records:  # the figures show VAEs: a classical detector has no latent space or decoder
        if (r.get("status") == "ok" and r.get("model_dir") and r.get("model") in MODELS
                and r["protocol"] in PROTOCOLS):  # a factors run has its own figures
            old = latest.get(r["model_dir"])
            if old is None or str(r.get("finished_at", "")) >= str(old.get("finished_at", "")):
                latest[r["model_dir"]] = r
    return list(latest.values())


def _best_run(records: list[dict[str, Any]], note: str = "") -> FigureRun:
    protocols = {r["protocol"] for r in records}
    protocol = LEAVE_ONE_OUT if LEAVE_ONE_OUT in protocols else sorted(protocols)[0]
    by_class = _group([r for r in records if r["protocol"] == protocol], "class")
    (k,), group = max(by_class.items(), key=lambda kv: (len({r["model"] for r in kv[1]}), -kv[0][0]))
    per_model: dict[str, dict[str, Any]] = {}
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


def _kept_figures(ctx: _Context, prefix: str) -> list[Block]:
    """The last report's figures named ``prefix*``, kept as they are when some saved model behind
    them is missing here (a fresh clone holds no models): a report never replaces a figure with a
    poorer one, nor deletes what it cannot draw again. Empty when every model is here."""
    named = _saved(ctx.records)
    present, _ = _saved_runs_or_reason(ctx)
    if len(present) == len(named):
        return []
    why = (f"{len(named) - len(present)} of the {len(named)} saved models the records name are not "
           f"under `models/` here, so it was not redrawn")
    return list(ctx.keep_figures(prefix, why))


def _test_images(ctx: _Context, run: FigureRun) -> DatasetSplits | str:
    data = ctx.dataset(run.dataset)
    if isinstance(data, str):
        return data
    if data.test.x.ndim != 4:
        return f"{run.dataset} is not an image dataset"
    return data


# ============================================================================ shared by the figures

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


def _role(run: FigureRun) -> str:
    if run.protocol == LEAVE_ONE_OUT:
        return f"held-out class {run.class_name!r}"
    return f"normal class {run.class_name!r}"

