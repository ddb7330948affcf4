"""Every column of one or more validation probes (``latent_knn_probe.py`` results) against one
score of the same runs, paired over the probes' (dataset × class) rows: mean validation AUC per
dataset and over all rows, wins / losses and a Wilcoxon signed-rank p-value (scipy), best first.

    python benchmarks/probe_summary.py benchmarks/results/feature_knn_probe_mnist.json \\
        benchmarks/results/feature_knn_probe_fmnist.json --against recon+latent+latent-knn \\
        --out benchmarks/results/feature_knn_probe_summary.json

``--versus`` pairs them with the ``--against`` column of *other* probes instead (another setting's
runs, matched by dataset and class), e.g. beta 0.5 against the default's beta 1:

    python benchmarks/probe_summary.py benchmarks/results/latent_knn_probe_{mnist,fmnist}_conv_beta05.json \\
        --versus benchmarks/results/latent_knn_probe_{mnist,fmnist}_conv.json \\
        --out benchmarks/results/beta05_probe_summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from dcvae.io.atomic import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probes", type=Path, nargs="+")
    parser.add_argument("--against", default="recon+latent+latent-knn",
                        help="the column every other is paired with (the library default's score)")
    parser.add_argument("--versus", type=Path, nargs="+",
                        help="probes of another setting whose --against column every column is paired with")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    probes = [json.loads(p.read_text()) for p in args.probes]
    columns = [k for k in probes[0]["rows"][0] if k not in ("class", "seconds")]
    others = [json.loads(p.read_text()) for p in args.versus] if args.versus else probes
    if any(args.against not in o["rows"][0] for o in others):
        sys.exit(f"--against {args.against!r} is not a column of every probe it is taken from")
    rows = [r for p in probes for r in p["rows"]]
    by_run = {(o["dataset"], r["class"]): r[args.against] for o in others for r in o["rows"]}
    runs = [(p["dataset"], r["class"]) for p in probes for r in p["rows"]]
    missing = [run for run in runs if run not in by_run]
    if missing:
        sys.exit(f"--versus has no run of {missing}")
    ref = np.array([by_run[run] for run in runs])
    names = list(dict.fromkeys(p["dataset"] for p in probes))  # a dataset may come in several probes
    table = []
    for column in columns:
        values = np.array([r[column] for r in rows])
        paired = bool(np.any(values != ref))
        table.append({"score": column, "mean": float(values.mean()),
                      **{n: float(np.mean([r[column] for r, (d, _) in zip(rows, runs, strict=True)
                                           if d == n])) for n in names},
                      "wins": int((values > ref).sum()), "losses": int((values < ref).sum()),
                      "p": float(wilcoxon(values, ref).pvalue) if paired else None})
    table.sort(key=lambda t: -t["mean"])
    print(f"{'score':36s} " + " ".join(f"{n:>7s}" for n in names) + f" {'all':>7s}  wins/losses  p")
    for t in table:
        p = "" if t["p"] is None else f"{t['p']:.3f}"
        print(f"{t['score']:36s} " + " ".join(f"{t[n]:7.4f}" for n in names)
              + f" {t['mean']:7.4f}  {t['wins']:4d}/{t['losses']:<6d} {p}")
    result = {"probes": [p.as_posix() for p in args.probes], "against": args.against, "rows": len(rows),
              "versus": [p.as_posix() for p in args.versus] if args.versus else None,
              "table": table, "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
