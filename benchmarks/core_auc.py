"""AUC of every model on two quick real-data settings (issue 2's closing figures).

    python benchmarks/core_auc.py --epochs 3 --out benchmarks/results/core_auc.json

Settings: MNIST one-class (normal = digit 0) and Fashion-MNIST leave-one-out (anomaly = class 0,
T-shirt/top), recon score (Eq. 17), marginal mode, seeds as given. Prints a table and writes every
run's record (``RunRecord.to_dict``, the library's one record) with the command and hardware to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dcvae.data import load_dataset
from dcvae.evaluation.provenance import hardware_summary
from dcvae.evaluation.run import RunSpec, run_protocol
from dcvae.models import MODELS

SETTINGS = [("mnist", "one-class", 0), ("fmnist", "leave-one-out", 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--score", default="recon")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/core_auc.json"))
    args = parser.parse_args()
    records = []
    for dataset, protocol, k in SETTINGS:
        data = load_dataset(dataset)
        for model in args.models:
            for seed in args.seeds:
                spec = RunSpec(model, dataset, protocol, k, seed,
                               {"epochs": args.epochs, "patience": 0}, (args.score,))
                result = run_protocol(spec, data).record
                records.append(result.to_dict())
                print(f"{dataset:7s} {protocol:13s} class {k} {model:10s} seed {seed} "
                      f"AUC {result.auc:.4f} AP {result.average_precision:.4f} "
                      f"train {result.train_seconds:6.1f} s", flush=True)
    print("\nmean AUC over seeds")
    print(f"{'model':10s} " + " ".join(f"{d}/{p}/{k}".rjust(26) for d, p, k in SETTINGS))
    for model in args.models:
        row = []
        for dataset, _, _ in SETTINGS:
            aucs = [r["auc"] for r in records if r["model"] == model and r["dataset"] == dataset]
            row.append(f"{np.mean(aucs):.4f}".rjust(26))
        print(f"{model:10s} " + " ".join(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv),
        "hardware": hardware_summary(),
        "date": time.strftime("%Y-%m-%d"),
        "records": records,
    }, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
