"""Several scores of one model against one baseline row, paired over the same (class, seed) runs.

Reads the records of one or more result stores (``results.jsonl``; the first record of a key
wins, so list the store to prefer first). Per dataset and score: the model's mean validation AUC
(what the selection rule reads, on the normal validation carve against the held-out class's
training images), its mean test AUC, the baseline's mean test AUC over the same runs, wins / ties
/ losses and the two-sided Wilcoxon signed-rank p-value (scipy).

    python benchmarks/paired_scores.py benchmarks/results/latent_knn10 --model dcvae-prior \\
        --baseline knn --out benchmarks/results/latent_knn10_paired.json

``--baseline-store`` reads the baseline's runs from another store, so that the baseline may be the
same model trained otherwise (dCVAE-prior with the conv backbone against the MLP), and
``--baseline-score`` pairs against one of its recorded scores instead of its headline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from dcvae.io.atomic import atomic_write_text


def records(stores: list[Path]) -> list[dict]:
    seen: dict[str, dict] = {}
    for store in stores:
        with open(store / "results.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    if r.get("status", "ok") == "ok" and "metrics" in r:
                        seen.setdefault(r["key"], r)
    return list(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--scores", nargs="*", help="default: every score the model's records hold")
    parser.add_argument("--baseline-store", type=Path,
                        help="read the baseline's runs from this store only (default: the stores)")
    parser.add_argument("--baseline-score", help="the baseline's recorded score (default: its headline)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = records(args.stores)
    ours: dict[tuple, dict] = {}
    base: dict[tuple, float] = {}
    for r in runs:  # a (dataset, class, seed) run from the store listed first wins here too
        if r["model"] == args.model:
            ours.setdefault((r["dataset"], r["class"], r["seed"]), r)
    for r in records([args.baseline_store]) if args.baseline_store else runs:
        if r["model"] == args.baseline and (args.baseline_store or r["model"] != args.model):
            auc = r["metrics"][args.baseline_score]["auc"] if args.baseline_score else r["auc"]
            base.setdefault((r["dataset"], r["class"], r["seed"]), auc)
    scores = args.scores or sorted({s for r in ours.values() for s in r["metrics"]})
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for dataset in sorted({k[0] for k in ours}):
        pairs = sorted(k for k in ours if k[0] == dataset and k in base)
        if not pairs:
            continue
        b = np.array([base[k] for k in pairs])
        for score in scores:
            if not all(score in ours[k]["metrics"] for k in pairs):
                continue
            a = np.array([ours[k]["metrics"][score]["auc"] for k in pairs])
            val = [ours[k]["metrics"][score].get("validation_auc") for k in pairs]
            d = a - b
            row = {"runs": len(pairs), "validation_auc": float(np.mean(val)) if None not in val else None,
                   "auc": float(a.mean()), "baseline_auc": float(b.mean()), "difference": float(d.mean()),
                   "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum()),
                   "p": float(wilcoxon(a, b).pvalue) if np.any(d) else 1.0}
            table[dataset][score] = row
            mean_val = row["validation_auc"]
            val_text = "     -" if mean_val is None else f"{mean_val * 100:6.2f}"
            print(f"{dataset:15s} {score:26s} val {val_text}  test {row['auc'] * 100:6.2f}  "
                  f"{args.baseline} {row['baseline_auc'] * 100:6.2f}  {row['difference'] * 100:+6.2f}  "
                  f"{row['wins']}/{row['ties']}/{row['losses']}  p {row['p']:.2g}  ({len(pairs)} runs)")
    result = {"model": args.model, "baseline": args.baseline,
              "baseline_store": args.baseline_store and args.baseline_store.as_posix(),
              "baseline_score": args.baseline_score, "table": table,
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
