"""Run a grid: skip what the store already holds, execute the rest, append one record per run.

Executors:
- ``local``: in this process (``workers=1``) or a pool of ``workers`` processes, each with
  ``threads`` PyTorch threads (default: the CPU cores shared out evenly);
- ``ray``: one Ray task per run, each reserving ``threads`` CPUs and running PyTorch with that many
  threads; a local Ray instance by default, an existing cluster with ``address``.
Either way the driver process is the one that appends to the store, as each run finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_curve
from tqdm.auto import tqdm

from dcvae import __version__
from dcvae.atomic import atomic_write, atomic_write_text
from dcvae.benchmark.grid import BenchmarkConfig, RunSpec, load_config
from dcvae.benchmark.store import RESULTS_FILE, ResultStore
from dcvae.data import DatasetSplits, LabelledArray, load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.metrics import calibrate_threshold, detection_report, roc_auc
from dcvae.protocols import make_protocol
from dcvae.score_family import base_scores, fit_score, parse_score
from dcvae.training import TrainingDivergedError

EXECUTORS = ("local", "ray")
#: The false-positive rates at which each record keeps its ROC curve (enough to draw it).
ROC_GRID = np.linspace(0.0, 1.0, 51)
CONFIG_COPY = "config.toml"


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str, data_dir: str | None) -> DatasetSplits:
    """Datasets are loaded once per process (a worker runs many runs on the same data)."""
    return load_dataset(name, data_dir)


def model_dir_for(out: Path, spec: RunSpec) -> Path:
    # the key ends the path: one model with two settings in a grid must not share a folder
    return (out / "models" / spec.dataset / spec.protocol / spec.model
            / f"class-{spec.target_class}" / f"seed-{spec.seed}-{spec.key[:8]}")


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit of the library that made a record (None outside a git checkout)."""
    here = Path(__file__).parents[1]  # the dcvae package
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=10, check=False)
        # changes to the library's own sources since that commit are flagged, not hidden
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True,
                                    text=True, cwd=here, timeout=10, check=False).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("+local-changes" if dirty else "")


def hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "host": socket.gethostname()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_one(spec: RunSpec, data: DatasetSplits, out: Path | None = None) -> dict[str, Any]:
    """Carve, fit, score every configured score on the test split (marginal mode), measure."""
    settings = dict(spec.settings)
    train_size = settings.pop("train_size", None)
    split = make_protocol(spec.protocol, data, spec.target_class, seed=spec.seed,
                          train_size=train_size,
                          validation_fraction=settings.get("validation_fraction", 0.1))
    detector = AnomalyDetector(spec.model, seed=spec.seed, score=spec.scores[0], progress=False,
                               **settings)
    record: dict[str, Any] = {
        "key": spec.key, **spec.identity(), "class_name": data.class_names[spec.target_class],
        "n_train": len(split.train), "n_validation": len(split.validation), "n_test": len(split.test),
        "n_anomalies": int(split.test_labels.sum()), "notes": list(data.notes),
        "library_version": __version__, "commit": source_commit(), "hardware": hardware(),
    }
    held_out = validation_anomalies(data, spec)
    start = time.perf_counter()
    try:
        detector.fit(split.train.x, split.train.y, condition_names=split.condition_names,
                     validation=(split.validation.x, split.validation.y))
    except TrainingDivergedError as err:  # a result too: this setting diverges
        return {**record, "status": "diverged", "error": str(err),
                "train_seconds": time.perf_counter() - start, "finished_at": _now()}
    train_seconds = time.perf_counter() - start
    model = detector.model_
    history = detector.history_
    assert model is not None and history is not None
    precision = detector.train_config.precision
    recipes = [parse_score(name) for name in spec.scores]
    bases = tuple(dict.fromkeys(b for recipe in recipes for b in recipe.bases))
    start = time.perf_counter()
    test = base_scores(model, split.test.x, None, bases, precision=precision)
    score_seconds = time.perf_counter() - start  # every base score of the test split, marginal mode
    normal = base_scores(model, split.validation.x, None, bases, precision=precision)
    held = base_scores(model, held_out.x, None, bases, precision=precision)
    raw: dict[str, np.ndarray] = {"test_labels": split.test_labels, "test_classes": split.test.y}
    for base in bases:
        raw.update({f"test_{base}": test[base].astype(np.float32),
                    f"validation_{base}": normal[base].astype(np.float32),
                    f"held_out_{base}": held[base].astype(np.float32)})
    metrics: dict[str, dict[str, Any]] = {}
    for recipe in recipes:
        if not all(np.isfinite(part[b]).all() for part in (test, normal, held) for b in recipe.bases):
            metrics[recipe.name] = {"error": "non-finite scores"}
            continue
        fitted = fit_score(recipe, normal)  # statistics of the normal validation carve only
        test_scores, normal_scores, held_scores = fitted(test), fitted(normal), fitted(held)
        threshold = calibrate_threshold(normal_scores, detector.contamination)
        metrics[recipe.name] = {
            **detection_report(split.test_labels, test_scores, threshold),
            "roc_tpr": _roc_on_grid(split.test_labels, test_scores),
            "validation_auc": roc_auc(np.r_[np.zeros(len(normal_scores)), np.ones(len(held_scores))],
                                      np.r_[normal_scores, held_scores])}
    last = history.epochs[-1]
    model_dir = None
    if out is not None and spec.save_model:
        path = model_dir_for(out, spec)
        detector.save(path)
        model_dir = path.relative_to(out).as_posix()
    scores_file = None
    if out is not None and spec.save_scores:  # per-sample scores, for studies of new scores
        path = out / "scores" / f"{spec.key}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _savez(tmp, raw))
        scores_file = path.relative_to(out).as_posix()
    headline = metrics[spec.scores[0]]
    return {
        **record, "status": "ok", "auc": headline.get("auc"),
        "average_precision": headline.get("average_precision"), "f1": headline.get("f1"),
        "metrics": metrics, "train_seconds": train_seconds, "score_seconds": score_seconds,
        "samples_per_second": len(split.train) * len(history.epochs) / max(train_seconds, 1e-9),
        "epochs_run": len(history.epochs), "best_epoch": history.best_epoch,
        "final_terms": {**{f"train_{k}": v for k, v in last["train"].items()},
                        **{f"validation_{k}": v for k, v in last.get("validation", {}).items()}},
        "condition_mode": "marginal" if model.conditional else "unconditional",
        "model_dir": model_dir, "scores_file": scores_file, "finished_at": _now(),
    }


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


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a bare name
        np.savez_compressed(fh, **arrays)


def _roc_on_grid(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    fpr, tpr, _ = roc_curve(labels, scores)
    return [round(float(v), 4) for v in np.interp(ROC_GRID, fpr, tpr)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _worker_run(spec_dict: dict[str, Any], data_dir: str | None, out: str, threads: int
                ) -> dict[str, Any]:
    """Entry point in a pool process or a Ray task: match PyTorch's threads to the CPU share."""
    torch.set_num_threads(threads)
    spec = RunSpec.from_dict(spec_dict)
    return run_one(spec, cached_dataset(spec.dataset, data_dir), Path(out))


def plan(config_path: str | Path, out: str | Path, data_dir: str | Path | None = None
         ) -> tuple[BenchmarkConfig, ResultStore, list[RunSpec]]:
    """Check everything that can fail before training: the config, the datasets, the output dir.

    Returns the config, the store and the runs still to do.
    """
    data = None if data_dir is None else str(data_dir)
    config = load_config(config_path,
                         class_count=lambda name: len(cached_dataset(name, data).class_names))
    store = ResultStore(out)
    store.check_writable()
    done = store.done_keys()
    return config, store, [spec for spec in config.runs if spec.key not in done]


def run_benchmark(config_path: str | Path, out: str | Path, *, data_dir: str | Path | None = None,
                  executor: str = "local", workers: int = 1, threads: int | None = None,
                  address: str | None = None, progress: bool = True,
                  reuse: Sequence[str | Path] = (),
                  on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, int]:
    """Run every run of the grid that the store in ``out`` does not hold yet.

    ``reuse``: other stores whose records of the same run (same key: model, data, class, seed,
    settings, scores) are copied in instead of training again, e.g. the winners of a tuning grid.

    Returns counts: ``total`` runs in the grid, ``skipped`` (already done), ``reused``, ``ran``.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    out = Path(out)
    config, store, pending = plan(config_path, out, data_dir)
    if config.source:  # the grid travels with its results
        atomic_write_text(out / CONFIG_COPY, config.source)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    data = None if data_dir is None else str(data_dir)
    counts = {"total": len(config.runs), "skipped": len(config.runs) - len(pending), "reused": 0,
              "ran": 0}
    for source in reuse:
        pending, copied = _reuse_from(Path(source), pending, out, store)
        counts["reused"] += copied
    if not pending:
        return counts
    bar = tqdm(total=len(pending), desc=config.name, unit="run", disable=not progress,
               dynamic_ncols=True)

    def show(text: str) -> None:
        bar.set_postfix_str(text, refresh=True)

    if executor == "ray":
        results = _run_ray(pending, data, out, threads, workers, address)
        show(f"{min(workers, len(pending))} runs at a time on Ray")
    elif workers == 1:
        results = _run_here(pending, data, out, threads, store, show)
    else:
        results = _run_pool(pending, data, out, threads, workers)
        show(f"{min(workers, len(pending))} runs at a time")
    try:
        for spec, record in results:
            if record["key"] not in store.done_keys():  # another worker may have finished it meanwhile
                store.append(record)
            counts["ran"] += 1
            if on_record is not None:
                on_record(record)
            if workers > 1 or executor == "ray":
                show(f"done: {spec.label} AUC {_fmt(record.get('auc'))}")
            bar.update(1)
    finally:
        bar.close()
    return counts


def _reuse_from(source: Path, pending: list[RunSpec], out: Path, store: ResultStore
                ) -> tuple[list[RunSpec], int]:
    """Copy ``source``'s records of pending runs into ``store``, with the files this grid saves;
    a run whose saved model or scores ``source`` lacks is left to train."""
    if not (source / RESULTS_FILE).is_file():
        raise FileNotFoundError(f"--reuse {source}: no {RESULTS_FILE} there")
    found = {r["key"]: r for r in ResultStore(source).records()}
    left, copied = [], 0
    for spec in pending:
        record = found.get(spec.key)
        ok = record is not None and record.get("status") == "ok"
        if ok and spec.save_model and not record.get("model_dir"):
            ok = False
        if ok and spec.save_scores and not record.get("scores_file"):
            ok = False
        if not ok:
            left.append(spec)
            continue
        record = {**record, "reused_from": source.as_posix()}
        if spec.save_model:
            target = model_dir_for(out, spec)
            shutil.copytree(source / record["model_dir"], target, dirs_exist_ok=True)
            record["model_dir"] = target.relative_to(out).as_posix()
        else:
            record["model_dir"] = None
        if spec.save_scores:
            target = out / "scores" / f"{spec.key}.npz"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / record["scores_file"], target)
            record["scores_file"] = target.relative_to(out).as_posix()
        else:
            record["scores_file"] = None
        store.append(record)
        copied += 1
    return left, copied


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _run_here(pending: list[RunSpec], data_dir: str | None, out: Path, threads: int,
              store: ResultStore, show: Callable[[str], None]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for spec in pending:
            if spec.key in store.done_keys():  # a second worker on the same store got there first
                continue
            show(f"now: {spec.label}")
            yield spec, run_one(spec, cached_dataset(spec.dataset, data_dir), out)
    finally:
        torch.set_num_threads(previous)


def _run_pool(pending: list[RunSpec], data_dir: str | None, out: Path, threads: int, workers: int
              ) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    # spawn, not fork: a forked copy of a process that has started PyTorch's threads can hang.
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_worker_run, spec.to_dict(), data_dir, str(out), threads): spec
                   for spec in pending}
        try:
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_ray(pending: list[RunSpec], data_dir: str | None, out: Path, threads: int, workers: int,
             address: str | None) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'dcvae[ray]'") from None
    env = {"DCVAE_DATA": os.environ["DCVAE_DATA"]} if "DCVAE_DATA" in os.environ else {}
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                  "log_to_driver": False}
        if env:  # a runtime_env costs a setup step on every node: only when there is one to pass
            kwargs["runtime_env"] = {"env_vars": env}
        if address is None:  # a local instance sized to this run: workers × threads CPUs
            kwargs["num_cpus"] = workers * threads
        ray.init(address=address, **kwargs)
    try:
        task = ray.remote(num_cpus=threads)(_worker_run)
        futures = {task.remote(spec.to_dict(), data_dir, str(out.resolve()), threads): spec
                   for spec in pending}
        remaining = list(futures)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            yield futures[done[0]], ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
