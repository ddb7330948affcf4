"""scikit-learn's check_estimator on the detector, for every model: which checks pass, which fail on
purpose (dcvae.detector.expected_failed_checks) and which are skipped, and why.

    python benchmarks/estimator_checks.py --out benchmarks/results/estimator_checks.json

The conv backbone is left out: scikit-learn's checks feed 2-D tables, which only the MLP takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import sklearn
import torch
from sklearn.utils.estimator_checks import check_estimator

from dcvae import __version__
from dcvae.detector import AnomalyDetector, expected_failed_checks
from dcvae.models import all_models

TINY = {"epochs": 2, "latent_dim": 2, "hidden_dims": (8,), "batch_size": 32, "progress": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/estimator_checks.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {"command": "python " + " ".join(sys.argv), "dcvae": __version__,
              "scikit-learn": sklearn.__version__, "models": {}}
    for model in sorted(all_models()):
        start = time.perf_counter()
        det = AnomalyDetector(model, **TINY)
        results = check_estimator(det, on_fail=None, on_skip=None,
                                  expected_failed_checks=expected_failed_checks(det))
        counts = Counter(r["status"] for r in results)
        others = sorted({(r["check_name"], r["status"], str(r["exception"]).splitlines()[0][:160])
                         for r in results if r["status"] != "passed"})
        report["models"][model] = {"counts": dict(counts), "seconds": round(time.perf_counter() - start, 1),
                                   "not passed": [list(o) for o in others]}
        print(f"{model:11s} " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), flush=True)
        for name, status, why in others:
            print(f"    {status:7s} {name}: {why}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
