"""One protocol run, end to end: carve → fit on normal data → score the test split → metrics.

Shared by ``dcvae evaluate``, ``dcvae demo`` and the benchmarks, so every number the project
reports comes from the same code path.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dcvae import __version__
from dcvae.data import DatasetSplits
from dcvae.detector import AnomalyDetector
from dcvae.metrics import detection_report
from dcvae.protocols import make_protocol


@dataclass
class EvaluationResult:
    """The record of one run; ``to_dict`` gives the JSON that ``dcvae evaluate --json`` prints."""

    model: str
    dataset: str
    protocol: str
    target_class: int
    class_name: str
    auc: float
    average_precision: float
    f1: float
    threshold: float
    score: str
    condition_mode: str
    train_seconds: float
    score_seconds: float
    epochs: int
    best_epoch: int | None
    seed: int
    n_train: int
    n_validation: int
    n_test: int
    n_anomalies: int
    hyperparameters: dict[str, Any]
    final_terms: dict[str, float]
    notes: list[str] = field(default_factory=list)
    library_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class"] = out.pop("target_class")
        return out


def evaluate_protocol(data: DatasetSplits, *, model: str, protocol: str, target_class: int,
                      seed: int = 0, train_size: int | None = None, validation_fraction: float = 0.1,
                      **detector_kwargs: Any) -> tuple[EvaluationResult, AnomalyDetector]:
    """Run ``protocol`` with class ``target_class`` on ``data`` and score in marginal mode."""
    split = make_protocol(protocol, data, target_class, validation_fraction=validation_fraction,
                          seed=seed, train_size=train_size)
    detector = AnomalyDetector(model, seed=seed, validation_fraction=validation_fraction,
                               **detector_kwargs)
    start = time.perf_counter()
    detector.fit(split.train.x, split.train.y, condition_names=split.condition_names,
                 validation=(split.validation.x, split.validation.y))
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = detector.decision_function(split.test.x)  # no test labels: marginal mode
    score_seconds = time.perf_counter() - start
    report = detection_report(split.test_labels, scores, detector.thresholds_["marginal"])
    history = detector.history_
    assert history is not None and detector.model_ is not None
    last = history.epochs[-1]
    cfg = detector.model_.config.to_dict()
    result = EvaluationResult(
        model=model, dataset=data.name, protocol=protocol, target_class=target_class,
        class_name=data.class_names[target_class], auc=report["auc"],
        average_precision=report["average_precision"], f1=report["f1"],
        threshold=report["threshold"], score=detector.score,
        condition_mode="marginal" if detector.model_.conditional else "unconditional",
        train_seconds=train_seconds, score_seconds=score_seconds, epochs=len(history.epochs),
        best_epoch=history.best_epoch, seed=seed, n_train=len(split.train),
        n_validation=len(split.validation), n_test=len(split.test),
        n_anomalies=int(split.test_labels.sum()),
        hyperparameters={k: v for k, v in cfg.items() if k != "condition_names"},
        final_terms={**{f"train_{k}": v for k, v in last["train"].items()},
                     **{f"validation_{k}": v for k, v in last.get("validation", {}).items()}},
        notes=list(data.notes),
    )
    return result, detector
