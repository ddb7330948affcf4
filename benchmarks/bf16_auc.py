"""bfloat16 against float32 (issue 18): does ``precision="bf16"`` keep the detector's AUC?

Leave-one-out on ``--dataset`` (normal = the other classes of the train split, anomaly = the
held-out class in the test split, marginal mode, no test label), the library default (dCVAE-prior,
its default score) and the VAE (``recon``), the same seed and data for both precisions: the
training and the scoring run under bf16 autocast or in float32, and the AUC difference is paired
per (model, class). The control: float32 again with seed 1, whose difference from seed 0 is what
training noise alone moves the AUC by; bf16 is within that noise when its differences are no
larger. Also the wall time of each fit and score, side by side in one run. A bf16 figure
only means something where the hardware computes bf16 natively (AMX or AVX512-BF16 on a CPU, or a
GPU); the script prints whether this CPU has them.

    python benchmarks/bf16_auc.py --dataset mnist --classes 0 1 2 3 4 5 6 7 8 9 --epochs 3 \\
        --out benchmarks/results/bf16_auc.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.metrics import roc_auc
from dcvae.io.atomic import atomic_write_text

MODELS = ("dcvae-prior", "vae")
#: (label, precision, seed): float32 and bf16 at seed 0, and the float32 seed-1 control
RUNS = (("fp32", "fp32", 0), ("bf16", "bf16", 0), ("fp32-seed1", "fp32", 1))


def cpu_bf16_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return []
    return sorted({f for f in flags if f in ("amx_bf16", "avx512_bf16")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=20_000, help="normal training images kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    flags = cpu_bf16_flags()
    print(f"bf16 in hardware (CPU flags): {flags or 'none: bf16 is emulated, and slow'}")
    rows = []
    for held_out in args.classes:
        normal = np.flatnonzero(data.train.y != held_out)[:args.train_size]
        x, c = data.train.x[normal], data.train.y[normal]
        labels = (data.test.y == held_out).astype(int)
        for model in MODELS:
            row: dict = {"class": held_out, "model": model}
            for label, precision, seed in RUNS:
                det = AnomalyDetector(model, epochs=args.epochs, precision=precision, device=args.device,
                                      seed=seed, progress=False)
                start = time.perf_counter()
                det.fit(x, c=c)
                fit_s = time.perf_counter() - start
                start = time.perf_counter()
                scores = det.decision_function(data.test.x)
                row[label] = {"auc": roc_auc(labels, scores), "fit_seconds": fit_s,
                              "score_seconds": time.perf_counter() - start, "score": det.anomaly_score_}
            row["difference"] = row["bf16"]["auc"] - row["fp32"]["auc"]
            row["seed_difference"] = row["fp32-seed1"]["auc"] - row["fp32"]["auc"]
            rows.append(row)
            fp32, bf16 = row["fp32"], row["bf16"]
            print(f"class {held_out} {model:12s} fp32 {fp32['auc']:.4f}  bf16 {bf16['auc']:.4f}  "
                  f"diff {row['difference']:+.4f} (seed 1: {row['seed_difference']:+.4f})  "
                  f"fit {fp32['fit_seconds']:.1f} s / "
                  f"{bf16['fit_seconds']:.1f} s", flush=True)
    summary = {}
    for model in MODELS:
        d = np.array([r["difference"] for r in rows if r["model"] == model])
        noise = np.array([r["seed_difference"] for r in rows if r["model"] == model])
        fit = [r["fp32"]["fit_seconds"] / r["bf16"]["fit_seconds"] for r in rows if r["model"] == model]
        summary[model] = {"mean_difference": float(d.mean()), "max_abs_difference": float(np.abs(d).max()),
                          "within_0.005": int((np.abs(d) <= 0.005).sum()), "runs": len(d),
                          "fit_speedup_median": float(np.median(fit)),
                          "seed_mean_difference": float(noise.mean()),
                          "seed_mean_abs_difference": float(np.abs(noise).mean()),
                          "mean_abs_difference": float(np.abs(d).mean())}
        print(f"{model}: bf16 - fp32 AUC mean {d.mean():+.4f}, max |diff| {np.abs(d).max():.4f}, "
              f"{summary[model]['within_0.005']}/{len(d)} within 0.005, mean |diff| {np.abs(d).mean():.4f} "
              f"against {np.abs(noise).mean():.4f} between float32 seeds; fit {np.median(fit):.2f}x faster")
    result = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "cpu_bf16_flags": flags, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rows": rows, "summary": summary}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
