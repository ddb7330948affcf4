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
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from dcvae.benchmark.grid import BenchmarkConfig, load_config
from dcvae.benchmark.store import RESULTS_FILE, ResultStore
from dcvae.data import DatasetSplits, load_dataset
from dcvae.evaluation.run import RunSpec, model_dir_for, run_protocol, scores_file_for
from dcvae.io.atomic import atomic_write_text

EXECUTORS = ("local", "ray")
CONFIG_COPY = "config.toml"


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str, data_dir: str | None) -> DatasetSplits:
    """Datasets are loaded once per process (a worker runs many runs on the same data)."""
    return load_dataset(name, data_dir)


def run_one(spec: RunSpec, data: DatasetSplits, out: Path | None = None) -> dict[str, Any]:
    """One run of the grid through the library's one run path; its record as stored."""
    return run_protocol(spec, data, out=out).record.to_dict()




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
        found_record = cast("dict[str, Any]", record)  # read only where ok: never None there
        model_dir = _inside(source, found_record.get("model_dir")) if ok and spec.save_model else None
        scores_file = _inside(source, found_record.get("scores_file")) if ok and spec.save_scores else None
        if (ok and spec.save_model and (model_dir is None or not model_dir.is_dir())
                or ok and spec.save_scores and (scores_file is None or not scores_file.is_file())):
            ok = False
        if not ok:
            left.append(spec)
            continue
        record = {**found_record, "reused_from": source.as_posix()}
        if model_dir is not None:
            target = model_dir_for(out, spec)
            shutil.copytree(model_dir, target, dirs_exist_ok=True)
            record["model_dir"] = target.relative_to(out).as_posix()
        else:
            record["model_dir"] = None
        if scores_file is not None:
            target = scores_file_for(out, spec)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(scores_file, target)
            record["scores_file"] = target.relative_to(out).as_posix()
        else:
            record["scores_file"] = None
        store.append(record)
        copied += 1
    return left, copied


def _inside(source: Path, relative: Any) -> Path | None:
    """The file or folder a source record names, only if it lies inside the source store, links
    resolved (a record's path is data: it must never send the copy to ``/etc`` or ``../``), and,
    for a folder, holds no links; otherwise None, and the run trains again."""
    if not isinstance(relative, str) or not relative:
        return None
    root = source.resolve()
    path = (source / relative).resolve()
    if path == root or not path.is_relative_to(root) or not path.exists():
        return None
    if path.is_dir() and any(p.is_symlink() for p in path.rglob("*")):
        return None
    return path


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
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_exit_with_parent,
                                initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_worker_run, spec.to_dict(), data_dir, str(out), threads): spec
                   for spec in pending}
        try:
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _exit_with_parent(parent: int) -> None:
    """In each pool worker: end when the driver is gone. A killed driver (SIGKILL, a closed
    terminal) cannot stop its workers, which would train on for hours; the driver is the only
    writer of the store, so nothing a worker holds is lost."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
