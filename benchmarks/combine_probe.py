"""A probe for issue 14 (validation data only): does another way of combining dCVAE-prior's scores,
or adding the encoder-feature and pixel kNNs to them, beat the library's default score
``recon+latent+latent-knn`` (the sum of the three standardised on the calibration carve)?

It reads the per-image scores that ``latent_knn_probe.py --save-scores DIR`` wrote (calibration,
validation and anomaly images of each held-out class; no test image) and, for every subset of two
or more of ``POOL`` and every combiner of ``COMBINERS``, measures the validation AUC, paired over
the (dataset x class) runs with the default: mean per dataset and over all runs, wins / losses,
a Wilcoxon signed-rank p-value (scipy) and, because hundreds of columns are tried at once, its
Holm-adjusted value over all of them. The combiners, each fitted on the calibration scores only:

- ``sum``: the sum of z-scores (mean and sd on calibration), what the library's ``+`` scores do;
- ``max``: the largest z-score;
- ``rank-mean`` / ``rank-max``: the mean / largest empirical CDF value F on calibration;
- ``fisher``: the sum of -log(1 - F), F = (calibration scores <= s) / (n + 1), which weighs the
  score that is most extreme for its own calibration distribution most.

    D=benchmarks/results/combine_probe   # D/scores/ is git-ignored, like every store's scores
    python benchmarks/latent_knn_probe.py --dataset mnist --classes 0 1 2 3 4 5 6 7 8 9 \\
        --backbone conv --save-scores $D/scores --out $D/probe_mnist.json      # and fmnist
    python benchmarks/combine_probe.py $D/scores --datasets mnist fmnist \\
        --check $D/probe_mnist.json $D/probe_fmnist.json --out $D/summary.json

``--check`` asserts that the default's AUC here equals the ``recon+latent+latent-knn`` column of
the probe results written by the same runs, so that the saved scores are those of the default.
(Training is deterministic on one machine; across machines the AUCs differ by about 0.003.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon
from sklearn.metrics import roc_auc_score

from dcvae.io.atomic import atomic_write_text

POOL = ("recon", "latent", "latent-knn", "latent-knn k=5", "head-knn k=5", "head-knn k=20", "pixel")
DEFAULT = ("sum", ("recon", "latent", "latent-knn"))

Scores = dict[str, np.ndarray]


def zscores(cal: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (x - cal.mean()) / max(float(cal.std()), 1e-12)


def ecdf(cal: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F(x) = (calibration scores <= x) / (n + 1): below 1, so that -log(1 - F) is finite."""
    return np.searchsorted(np.sort(cal), x, side="right") / (len(cal) + 1)


COMBINERS: dict[str, Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]] = {
    "sum": lambda cal, x: np.sum([zscores(c, v) for c, v in zip(cal, x, strict=True)], axis=0),
    "max": lambda cal, x: np.max([zscores(c, v) for c, v in zip(cal, x, strict=True)], axis=0),
    "rank-mean": lambda cal, x: np.mean([ecdf(c, v) for c, v in zip(cal, x, strict=True)], axis=0),
    "rank-max": lambda cal, x: np.max([ecdf(c, v) for c, v in zip(cal, x, strict=True)], axis=0),
    "fisher": lambda cal, x: np.sum([-np.log1p(-ecdf(c, v)) for c, v in zip(cal, x, strict=True)],
                                    axis=0),
}


def column_auc(run: Scores, combiner: str, parts: tuple[str, ...]) -> float:
    cal = [run[f"{p}/cal"] for p in parts]
    val = COMBINERS[combiner](cal, [run[f"{p}/val"] for p in parts])
    anom = COMBINERS[combiner](cal, [run[f"{p}/anom"] for p in parts])
    truth = np.r_[np.zeros(len(val)), np.ones(len(anom))]
    return float(roc_auc_score(truth, np.r_[val, anom]))


def holm(p: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the non-missing p-values (missing: the default itself)."""
    idx = sorted((i for i, v in enumerate(p) if v is not None), key=lambda i: p[i])
    out: list[float | None] = [None] * len(p)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (len(idx) - rank) * p[i]))
        out[i] = running
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path, help="the --save-scores directory of latent_knn_probe.py")
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--check", type=Path, nargs="*", default=[],
                        help="latent_knn_probe.py results whose default column this must reproduce")
    parser.add_argument("--show", type=int, default=25, help="rows to print (all are written)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs: list[tuple[str, int, Scores]] = []
    for dataset in args.datasets:
        files = sorted(args.scores.glob(f"{dataset}_class*.npz"))
        if not files:
            sys.exit(f"no {dataset}_class*.npz in {args.scores}")
        for f in files:
            with np.load(f) as z:
                runs.append((dataset, int(f.stem.split("class")[1]), {k: z[k] for k in z.files}))
    columns = [(c, s) for n in range(2, len(POOL) + 1) for s in itertools.combinations(POOL, n)
               for c in COMBINERS]
    columns = [("sum", (p,)) for p in POOL] + columns  # single scores: sum of one is the score
    auc = {col: np.array([column_auc(r, *col) for _, _, r in runs]) for col in columns}
    ref = auc[DEFAULT]
    for path in args.check:
        probe = json.loads(path.read_text())
        for row in probe["rows"]:
            i = next((i for i, (d, h, _) in enumerate(runs)
                      if d == probe["dataset"] and h == row["class"]), None)
            if i is not None and abs(ref[i] - row["recon+latent+latent-knn"]) > 1e-6:
                sys.exit(f"{probe['dataset']} class {row['class']}: the default's AUC here is "
                         f"{ref[i]:.6f}, {path} says {row['recon+latent+latent-knn']:.6f}")
    table = []
    for (combiner, parts), values in auc.items():
        paired = bool(np.any(values != ref))
        table.append({"score": f"{combiner}({'+'.join(parts)})", "combiner": combiner, "parts": list(parts),
                      "mean": float(values.mean()),
                      **{d: float(np.mean([v for v, (dd, _, _) in zip(values, runs, strict=True) if dd == d]))
                         for d in args.datasets},
                      "wins": int((values > ref).sum()), "losses": int((values < ref).sum()),
                      "p": float(wilcoxon(values, ref).pvalue) if paired else None})
    for t, adj in zip(table, holm([t["p"] for t in table]), strict=True):
        t["p_holm"] = adj
    table.sort(key=lambda t: -t["mean"])
    head = (f"{'score':58s} " + " ".join(f"{d:>7s}" for d in args.datasets)
            + f" {'all':>7s}  w/l    p      p_holm")
    print(f"{len(runs)} runs, {len(table)} columns, against sum({'+'.join(DEFAULT[1])})")
    print(head)
    shown = table[:args.show] + [t for t in table[args.show:]
                                 if (t["combiner"] == "sum" and len(t["parts"]) == 1) or t["p"] is None]
    for t in shown:
        p = "" if t["p"] is None else f"{t['p']:.4f} {t['p_holm']:.3f}"
        print(f"{t['score']:58s} " + " ".join(f"{t[d]:7.4f}" for d in args.datasets)
              + f" {t['mean']:7.4f}  {t['wins']:2d}/{t['losses']:<3d} {p}")
    result = {"runs": [[d, h] for d, h, _ in runs], "against": DEFAULT[1], "columns": len(table),
              "table": table, "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
