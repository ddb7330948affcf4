"""Where one benchmark run's wall time goes (issue 18: everything a run does besides training and
scoring the test split, the validation carve scored once included, at most 5% of it on MNIST).

One run of the library default (dCVAE-prior, conv backbone, conv10's settings and scores) through
the library's one run path (``run_protocol``), each part timed by a wrapper around it:

- ``training``: ``Trainer.fit``, the epochs (each with its validation loss);
- ``training codes and latent fits``: the codes of the training images, the Gaussians and the
  neighbour index fitted on them (``latent`` and ``latent-knn`` need them);
- ``validation carve``: ``_calibrate``, the carve scored once for the thresholds;
- ``test scoring``: the record's ``score_seconds`` (every score of the grid, marginal mode);
- ``held-out anomalies``: the training images of the held-out class (at most 2,000) scored for
  the validation AUC that tuning reads;
- ``data loading``: ``load_dataset``, once (a worker loads a dataset once for all its runs).

The overhead is the wall time less training and test scoring. A benchmark worker runs many runs
in one process, so what only its first run pays is timed apart and left out of the run: the first
Adam optimiser a process builds imports ``torch._dynamo`` (about 1 s).

    python benchmarks/run_parts.py --dataset mnist --epochs 10 --threads 1 \
        --out benchmarks/results/run_parts.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector, estimator
from dcvae.evaluation.run import RunSpec, run_protocol
from dcvae.io.atomic import atomic_write_text
from dcvae.training.trainer import Trainer

SCORES = ("recon+latent-knn", "recon+latent+latent-knn", "latent-knn", "recon+latent",
          "latent+latent-knn", "recon", "latent")
SETTINGS = {"backbone": "conv", "batch_size": 128, "beta": 1.0, "latent_dim": 16, "lr": 0.001,
            "patience": 0, "prior_means": "fixed", "secondary_lr": 0.0001}

seconds: dict[str, float] = defaultdict(float)


def timed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[part] += time.perf_counter() - start
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--target-class", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="as the grids run (--threads 1)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    Trainer.fit = timed("training", Trainer.fit)  # type: ignore[method-assign]
    estimator._calibrate = timed("validation carve", estimator._calibrate)
    codes = "training codes and latent fits"
    estimator.training_codes = timed(codes, estimator.training_codes)
    estimator.fit_latent_gaussians = timed(codes, estimator.fit_latent_gaussians)
    estimator.LatentCodes.of = timed(codes, estimator.LatentCodes.of)  # type: ignore[method-assign]
    AnomalyDetector.base_scores = timed("base scores", AnomalyDetector.base_scores)  # type: ignore[method-assign]

    start = time.perf_counter()  # once per process: torch.optim imports torch._dynamo here
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], fused=True)
    warm_up = time.perf_counter() - start

    start = time.perf_counter()
    data = load_dataset(args.dataset)
    seconds["data loading"] = time.perf_counter() - start
    spec = RunSpec(model="dcvae-prior", dataset=args.dataset, protocol="leave-one-out",
                   target_class=args.target_class, seed=0,
                   settings={**SETTINGS, "epochs": args.epochs}, scores=SCORES)
    record = run_protocol(spec, data).record
    wall = time.perf_counter() - start
    seconds["test scoring"] = record.score_seconds or 0.0
    seconds["held-out anomalies"] = seconds.pop("base scores") - seconds["test scoring"]
    overhead = wall - seconds["training"] - seconds["test scoring"]
    parts = {part: {"seconds": value, "share": value / wall} for part, value in seconds.items()}
    for part, value in parts.items():
        print(f"{part:32s} {value['seconds']:8.2f} s  {100 * value['share']:5.1f}%")
    print(f"{'wall':32s} {wall:8.2f} s; besides training and test scoring {overhead:.2f} s "
          f"({100 * overhead / wall:.1f}%); AUC {record.auc:.4f}")
    print(f"{'once per process (not in wall)':32s} {warm_up:8.2f} s; with it in the run: "
          f"{100 * (overhead + warm_up) / (wall + warm_up):.1f}%")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    atomic_write_text(args.out, json.dumps({
        "command": command, "threads": args.threads, "n_train": record.n_train,
        "n_validation": record.n_validation, "n_test": record.n_test, "epochs": args.epochs,
        "wall_seconds": wall, "parts": parts, "overhead_seconds": overhead,
        "overhead_share": overhead / wall, "once_per_process_seconds": warm_up,
        "overhead_share_first_run_of_a_process": (overhead + warm_up) / (wall + warm_up),
        "auc": record.auc}, indent=1) + "\n")


if __name__ == "__main__":
    main()
