"""One protocol run, end to end: carve → fit on normal data → score the test split → one record
(or, for the ``factors`` protocol, measure the disentanglement of the test split's codes).

``run_protocol`` is the only run path: ``dcvae evaluate``, ``dcvae demo`` and every benchmark
grid call it, so every number the project reports comes from the same code and lands in the same
record (``RunRecord``, the lines of a benchmark store). The detector scores its normal validation
carve once, in ``fit``; the run reuses those scores for every recorded score's threshold and
validation AUC.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np

from dcvae import __version__
from dcvae.data import DatasetSplits, FactorSplits, LabelledArray
from dcvae.detector import AnomalyDetector
from dcvae.detector.config import ARCHITECTURE
from dcvae.disentanglement.measure import measure_disentanglement
from dcvae.evaluation.metrics import detection_report, roc_auc, roc_on_grid
from dcvae.evaluation.protocols import FACTORS, ProtocolSplit, factors_split, make_protocol
from dcvae.evaluation.provenance import hardware, source_commit
from dcvae.io.atomic import atomic_write
from dcvae.models import VAEConfig
from dcvae.scoring import MARGINAL, calibrate, condition_mode, parse_score
from dcvae.scoring.family import with_corrected
from dcvae.training import TrainingDivergedError

#: Run-level settings that are not detector arguments. ``eval_size``: the test images a
#: ``factors`` run measures (a seeded subsample, the same for every run; default all).
RUN_SETTINGS = ("train_size", "eval_size")
#: The record fields of a ``factors`` run alone, absent from the others.
FACTORS_FIELDS = ("disentanglement", "condition_factor", "steps")
#: The test images a ``factors`` run measures are drawn with this seed, whatever the run's seed,
#: so that every model and seed is measured on the same images.
EVAL_SUBSAMPLE_SEED = 0


@dataclass(frozen=True)
class RunSpec:
    """One run: everything that determines its result, and its key in a results store."""

    model: str
    dataset: str
    protocol: str
    target_class: int
    seed: int
    settings: dict[str, Any]
    scores: tuple[str, ...]
    save_model: bool = False
    save_scores: bool = False

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (what is saved does not change a result)."""
        return {"model": self.model, "dataset": self.dataset, "protocol": self.protocol,
                "class": self.target_class, "seed": self.seed, "settings": self.settings,
                "scores": list(self.scores)}

    @property
    def key(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        held_out = "" if self.protocol == FACTORS else f" class {self.target_class}"
        return f"{self.model} {self.dataset} {self.protocol}{held_out} seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "save_model": self.save_model, "save_scores": self.save_scores}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(model=d["model"], dataset=d["dataset"], protocol=d["protocol"],
                   target_class=int(d["class"]), seed=int(d["seed"]), settings=dict(d["settings"]),
                   scores=tuple(d["scores"]), save_model=bool(d.get("save_model", False)),
                   save_scores=bool(d.get("save_scores", False)))

    def detector(self, *, progress: bool = False) -> AnomalyDetector:
        """The (unfitted) detector this run trains: the settings, the seed, the headline score."""
        settings = {k: v for k, v in self.settings.items() if k not in RUN_SETTINGS}
        return AnomalyDetector.from_settings(self.model, settings, seed=self.seed,
                                             anomaly_score=self.scores[0], progress=progress)


@dataclass
class RunRecord:
    """What one run measured; ``to_dict`` is a line of ``results.jsonl`` and ``evaluate --json``.

    ``metrics`` maps every recorded score to its test ``auc``, ``average_precision``, ``f1`` and
    ``threshold`` (calibrated on the normal validation carve), ``validation_auc`` (validation carve
    against the anomaly classes' *training* images: what model selection may look at), and, for
    the headline score (the first of ``scores``), ``roc_tpr`` (the ROC at 51 fixed false-positive
    rates); ``auc``, ``average_precision`` and ``f1`` repeat the headline score's.

    A ``factors`` run (class -1, ``class_name`` "all") measures no detection: ``metrics`` is empty,
    ``disentanglement`` maps each measurement set (``remaining``, ``per_class``, ``all``; see
    ``dcvae.disentanglement.measure``) to its metrics, ``condition_factor`` names the factor that
    was the condition, ``n_test`` counts the test images measured and ``steps`` the optimiser steps.
    The three fields are absent from other records.

    ``architecture`` (a VAE's ``backbone``, ``hidden_dims``, ``latent_dim``, "auto" resolved) is
    absent from classical runs and from records written before it existed (before dcvae-prior's
    "auto" backbone, CHANGELOG), which ran every VAE on the MLP unless the grid named a backbone.
    """

    key: str
    model: str
    dataset: str
    protocol: str
    target_class: int
    seed: int
    settings: dict[str, Any]
    scores: list[str]
    class_name: str
    n_train: int
    n_validation: int
    n_test: int
    n_anomalies: int
    notes: list[str]
    status: str = "ok"
    error: str | None = None
    auc: float | None = None
    average_precision: float | None = None
    f1: float | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_seconds: float = 0.0
    score_seconds: float | None = None
    samples_per_second: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    final_terms: dict[str, float] = field(default_factory=dict)
    condition_mode: str | None = None
    model_dir: str | None = None
    scores_file: str | None = None
    library_version: str = __version__
    commit: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""
    disentanglement: dict[str, dict[str, float]] | None = None
    condition_factor: str | None = None
    steps: int | None = None
    architecture: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class"] = out.pop("target_class")
        for name in (*FACTORS_FIELDS, "architecture"):
            if out[name] is None:
                del out[name]
        if self.status == "ok":
            del out["error"]
        else:  # a diverged run measured nothing after training
            for name in ("auc", "average_precision", "f1", "metrics", "score_seconds",
                         "samples_per_second", "epochs_run", "best_epoch", "final_terms",
                         "condition_mode", "model_dir", "scores_file"):
                del out[name]
        return out


@dataclass
class RunResult:
    record: RunRecord
    detector: AnomalyDetector | None  # None when training diverged


def run_protocol(spec: RunSpec, data: DatasetSplits, *, out: Path | None = None,
                 progress: bool = False) -> RunResult:
    """Carve ``spec.protocol`` on ``data``, fit, and measure: a detection protocol scores every
    score of ``spec`` on the test split in marginal mode (no test label); the ``factors`` protocol
    measures the disentanglement of the test split's codes. ``out``: the results directory where
    the saved model and per-sample scores go, when the spec asks for them."""
    settings = dict(spec.settings)
    detector = spec.detector(progress=progress)
    carve: dict[str, Any] = {"seed": spec.seed, "train_size": settings.get("train_size"),
             "validation_fraction": detector.validation_fraction}
    split = (factors_split(data, **carve) if spec.protocol == FACTORS
             else make_protocol(spec.protocol, data, spec.target_class, **carve))
    record = RunRecord(
        key=spec.key, model=spec.model, dataset=spec.dataset, protocol=spec.protocol,
        target_class=spec.target_class, seed=spec.seed, settings=spec.settings, scores=list(spec.scores),
        class_name="all" if spec.protocol == FACTORS else data.class_names[spec.target_class],
        n_train=len(split.train), n_validation=len(split.validation), n_test=len(split.test),
        n_anomalies=int(split.test_labels.sum()), notes=list(data.notes), commit=source_commit(),
        hardware=hardware())
    start = time.perf_counter()
    try:
        detector.fit(split.train.x, c=split.train.y, condition_names=split.condition_names,
                     validation=(split.validation.x, split.validation.y), training_scores=False)
    except TrainingDivergedError as err:  # a result too: this setting diverges
        record.status, record.error = "diverged", str(err)
        record.train_seconds, record.finished_at = time.perf_counter() - start, _now()
        return RunResult(record, None)
    record.train_seconds = time.perf_counter() - start
    record.architecture = architecture(detector)
    history = detector.history_
    last = history.epochs[-1] if history.epochs else {"train": {}}  # a classical detector: no epochs
    record.epochs_run, record.best_epoch = len(history.epochs), history.best_epoch
    record.samples_per_second = len(split.train) * len(history.epochs) / max(record.train_seconds, 1e-9)
    record.final_terms = {**{f"train_{k}": v for k, v in last["train"].items()},
                          **{f"validation_{k}": v for k, v in last.get("validation", {}).items()}}
    if spec.protocol == FACTORS:
        _measure_factors(record, detector, data, settings.get("eval_size"))
    else:
        _measure_detection(record, spec, detector, data, split, out)
    if out is not None and spec.save_model:
        path = model_dir_for(out, spec)
        detector.save(path)
        record.model_dir = path.relative_to(out).as_posix()
    record.finished_at = _now()
    return RunResult(record, detector)


def architecture(detector: AnomalyDetector) -> dict[str, Any] | None:
    """The architecture a fitted VAE ran with, "auto" resolved (a grid may name none: the model's
    own default then depends on the data's shape); None for a classical detector."""
    config = getattr(detector.model_, "config", None)
    if not isinstance(config, VAEConfig):
        return None
    values = {name: getattr(config, name) for name in ARCHITECTURE}
    values["hidden_dims"] = list(values["hidden_dims"])  # as the JSON store reads it back
    return values


def _measure_detection(record: RunRecord, spec: RunSpec, detector: AnomalyDetector, data: DatasetSplits,
                       split: ProtocolSplit, out: Path | None) -> None:
    """Every score's metrics on the test split; the per-sample scores saved when the spec asks."""
    held_out = validation_anomalies(data, spec)
    recipes = [parse_score(name) for name in spec.scores]
    bases = tuple(dict.fromkeys(b for recipe in recipes for b in recipe.bases))
    start = time.perf_counter()
    test = detector.base_scores(split.test.x, None, bases)
    record.score_seconds = time.perf_counter() - start  # every base score of the test split
    normal = with_corrected(detector.validation_base_scores_[MARGINAL], split.validation.x, bases)
    held = detector.base_scores(held_out.x, None, bases)
    for recipe in recipes:  # the ROC curve is kept for the headline score, which the report draws
        record.metrics[recipe.name] = _measure(recipe, test, normal, held, split.test_labels,
                                               detector.contamination, roc=recipe.name == spec.scores[0])
    headline = record.metrics[spec.scores[0]]
    record.auc, record.average_precision, record.f1 = (headline.get(k) for k in
                                                       ("auc", "average_precision", "f1"))
    record.condition_mode = condition_mode(detector.model_, None)
    if out is not None and spec.save_scores:  # per-sample scores, for studies of new scores
        raw = {"test_labels": split.test_labels, "test_classes": split.test.y}
        for base in bases:
            raw.update({f"test_{base}": test[base].astype(np.float32),
                        f"validation_{base}": normal[base].astype(np.float32),
                        f"held_out_{base}": held[base].astype(np.float32)})
        path = scores_file_for(out, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _savez(tmp, raw))
        record.scores_file = path.relative_to(out).as_posix()


def _measure_factors(record: RunRecord, detector: AnomalyDetector, data: DatasetSplits,
                     eval_size: int | None) -> None:
    """The disentanglement of the codes of the test split (or of its seeded ``eval_size``
    subsample) against its factors, the class factor being the condition."""
    factors = cast("FactorSplits", data.factors)  # factors_split has refused a dataset without
    rows = evaluation_rows(len(data.test), eval_size)
    start = time.perf_counter()
    record.disentanglement = measure_disentanglement(
        detector, data.test.x[rows], factors.test[rows], condition_factor=factors.class_factor,
        condition_names=data.class_names, seed=record.seed)
    record.score_seconds = time.perf_counter() - start
    record.condition_factor = factors.names[factors.class_factor]
    record.n_test = len(rows)
    record.steps = (record.epochs_run or 0) * math.ceil(record.n_train / detector.batch_size)


def evaluation_rows(n_test: int, eval_size: int | None) -> np.ndarray:
    """The test rows a ``factors`` run measures: all, or ``eval_size`` of them drawn with
    :data:`EVAL_SUBSAMPLE_SEED` (the same images for every model and seed), in order."""
    if eval_size is None or eval_size >= n_test:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(EVAL_SUBSAMPLE_SEED).choice(n_test, eval_size, replace=False))


def _measure(recipe: Any, test: dict[str, np.ndarray], normal: dict[str, np.ndarray],
             held: dict[str, np.ndarray], labels: np.ndarray, contamination: float, *,
             roc: bool) -> dict[str, Any]:
    """One score's metrics, its threshold calibrated on the normal validation carve only."""
    if not all(np.isfinite(part[b]).all() for part in (test, normal, held) for b in recipe.bases):
        return {"error": "non-finite scores"}
    calibrated = calibrate(recipe, normal, contamination)
    test_scores, held_scores = calibrated.fitted(test), calibrated.fitted(held)
    normal_scores = calibrated.normal_scores
    out: dict[str, Any]
    out = {**detection_report(labels, test_scores, calibrated.threshold),
           "validation_auc": roc_auc(np.r_[np.zeros(len(normal_scores)), np.ones(len(held_scores))],
                                     np.r_[normal_scores, held_scores])}
    if roc:
        out["roc_tpr"] = roc_on_grid(labels, test_scores)
    return out


def validation_anomalies(data: DatasetSplits, spec: RunSpec, limit: int = 2000) -> LabelledArray:
    """Anomalies for model selection without the test split: the *training* images of the anomaly
    classes, which the protocol keeps out of training. With the normal validation carve they give
    a ``validation_auc`` that tuning may look at; the test AUC is never used to choose."""
    y = data.train.y
    mask = y == spec.target_class if spec.protocol == "leave-one-out" else y != spec.target_class
    index = np.flatnonzero(mask)
    if len(index) > limit:
        index = np.sort(np.random.default_rng(spec.seed).choice(index, limit, replace=False))
    return data.train.subset(index)


def model_dir_for(out: Path, spec: RunSpec) -> Path:
    # the key ends the path: one model with two settings in a grid must not share a folder
    run = out / "models" / spec.dataset / spec.protocol / spec.model
    if spec.protocol != FACTORS:  # a factors run holds no class out
        run = run / f"class-{spec.target_class}"
    return run / f"seed-{spec.seed}-{spec.key[:8]}"


def scores_file_for(out: Path, spec: RunSpec) -> Path:
    return out / "scores" / f"{spec.key}.npz"


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a bare name
        np.savez_compressed(fh, **cast("dict[str, Any]", arrays))  # no key is the allow_pickle flag


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
