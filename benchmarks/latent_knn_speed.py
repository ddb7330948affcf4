"""latent-knn's distance computation: the float64 matrix-product form on centred codes
(``NeighbourTable``, used by the library and the ONNX graph) against float32 exact differences
(``torch.cdist`` without the matrix product, the form before), side by side in one run, and each
one's error against a float64 exact computation.

    python benchmarks/latent_knn_speed.py --out benchmarks/results/latent_knn_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dcvae.scoring.latent import LATENT_KNN_K, LatentCodes


def _exact(q: torch.Tensor, r: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    d = torch.cdist(q.to(dtype), r.to(dtype), compute_mode="donot_use_mm_for_euclid_dist")
    return d.topk(LATENT_KNN_K, dim=1, largest=False).values.mean(dim=1).double()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=5000, help="training codes of the condition")
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    # codes like a trained encoder's: a cluster away from the origin (radius 3, as dcvae-prior's
    # prior means), queries half from the cluster, half far from it
    codes = rng.normal(size=(args.codes, args.dim)) + 3.0 * np.eye(args.dim)[0]
    near = codes[rng.choice(args.codes, args.queries // 2)] + 0.05 * rng.normal(size=(args.queries // 2,
                                                                                      args.dim))
    far = rng.normal(size=(args.queries - len(near), args.dim)) * 3
    q = torch.as_tensor(np.concatenate([near, far]), dtype=torch.float32)
    latent = LatentCodes.of(codes, np.zeros(args.codes, dtype=np.int64), 1)
    truth = _exact(q.double(), latent.codes.double(), torch.float64)
    forms = {"table (float64, matrix product)": lambda: latent.distance(q, None),
             "cdist exact (float32)": lambda: _exact(q, latent.codes, torch.float32)}
    latent.distance(q[:2], None)  # builds the table once, as a fitted model holds it
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(args.repeats):  # interleaved: the machine's noise hits both alike
        for name, fn in forms.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rows = {}
    for name, fn in forms.items():
        err = ((fn() - truth).abs() / truth).max().item()
        rows[name] = {"median_ms": 1000 * float(np.median(times[name])), "max_rel_error": err}
        print(f"{name:32s} {rows[name]['median_ms']:8.2f} ms  max relative error {err:.2e}")
    ratio = rows["cdist exact (float32)"]["median_ms"] / rows["table (float64, matrix product)"]["median_ms"]
    print(f"speed-up {ratio:.2f}x ({args.queries} queries x {args.codes} codes, d {args.dim}, 1 thread)")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows, "speedup": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
