"""An ensemble over seeds, from saved per-sample scores: does averaging two models' scores help?

For every (dataset, protocol, held-out class) with runs of ``--model`` at two or more seeds, each
run's score is fitted on its own normal validation carve (as the library does; a standardised sum
like ``recon+latent`` is then on one scale for every seed), and the fitted test scores of the
seeds are averaged. The test split is the same for every seed, so the ensemble has a test AUC.
It has no honest validation AUC: each seed carves a different validation set out of the training
split, so one seed's validation images are another seed's training images. The ensemble is
therefore measured here, never chosen by the rule.

    python benchmarks/seed_ensemble.py benchmarks/results/epochs10 --model dcvae-prior \\
        --score recon+latent --out benchmarks/results/epochs10_seed_ensemble.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from dcvae.benchmark import ResultStore
from dcvae.evaluation.metrics import roc_auc
from dcvae.io.atomic import atomic_write_text
from dcvae.scoring import fit_score, parse_score


def fitted_test_scores(directory: Path, record: dict, score: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's test labels and its test scores under ``score``, fitted on its validation carve."""
    recipe = parse_score(score)
    with np.load(directory / record["scores_file"], allow_pickle=False) as raw:
        missing = [b for b in recipe.bases if f"test_{b}" not in raw.files]
        if missing:
            raise SystemExit(f"run {record['key']} did not save the base scores {missing}")
        parts = {part: {b: raw[f"{part}_{b}"].astype(np.float64) for b in recipe.bases}
                 for part in ("test", "validation")}
        labels = raw["test_labels"]
    return labels, fit_score(recipe, parts["validation"])(parts["test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--score", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--baseline", nargs=2, metavar=("STORE", "MODEL"), default=None,
                        help="Compare the ensemble, paired over classes, with MODEL's AUC in STORE "
                             "(mean over its seeds), e.g. benchmarks/results/epochs10 knn.")
    args = parser.parse_args()
    baseline: dict[tuple, list[float]] = defaultdict(list)
    if args.baseline is not None:
        for r in ResultStore(Path(args.baseline[0])).records():
            if r.get("status") == "ok" and r["model"] == args.baseline[1]:
                baseline[(r["dataset"], r["protocol"], r["class"])].append(r["auc"])
    groups: dict[tuple, list[dict]] = defaultdict(list)
    absent = 0  # score files are kept where the runs ran, never committed
    for r in ResultStore(args.directory).records():
        if r.get("status") == "ok" and r["model"] == args.model and r.get("scores_file"):
            if (args.directory / r["scores_file"]).is_file():
                groups[(r["dataset"], r["protocol"], r["class"])].append(r)
            else:
                absent += 1
    if absent:
        print(f"{absent} runs of {args.model} have no score file here; they are left out")
    rows = []
    for (dataset, protocol, cls), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len({r["seed"] for r in runs}) < 2:
            continue
        runs = sorted(runs, key=lambda r: r["seed"])
        fitted = [fitted_test_scores(args.directory, r, args.score) for r in runs]
        labels = fitted[0][0]
        if any(not np.array_equal(labels, other) for other, _ in fitted[1:]):
            raise SystemExit(f"{dataset} class {cls}: the seeds' test splits differ")
        single = [roc_auc(labels, s) for _, s in fitted]
        rows.append({"dataset": dataset, "protocol": protocol, "class": cls,
                     "seeds": [r["seed"] for r in runs], "single_auc": single,
                     "ensemble_auc": roc_auc(labels, np.mean([s for _, s in fitted], axis=0))})
    summary = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        for protocol in sorted({r["protocol"] for r in rows if r["dataset"] == dataset}):
            part = [r for r in rows if r["dataset"] == dataset and r["protocol"] == protocol]
            single = float(np.mean([np.mean(r["single_auc"]) for r in part]))
            ensemble = float(np.mean([r["ensemble_auc"] for r in part]))
            gains = [r["ensemble_auc"] - np.mean(r["single_auc"]) for r in part]
            summary[f"{dataset} {protocol}"] = {"classes": len(part), "single_mean": single,
                                                "ensemble_mean": ensemble,
                                                "gain_min": float(min(gains)), "gain_max": float(max(gains))}
            print(f"{dataset} {protocol} ({len(part)} classes): mean of single seeds {100 * single:.2f}, "
                  f"ensemble {100 * ensemble:.2f} (gain per class {100 * min(gains):+.2f} .. "
                  f"{100 * max(gains):+.2f})")
            paired = [(r["ensemble_auc"], float(np.mean(baseline[(dataset, protocol, r["class"])])))
                      for r in part if baseline.get((dataset, protocol, r["class"]))]
            if args.baseline is not None and len(paired) == len(part):
                ours, theirs = np.array(paired).T
                wins = int((ours > theirs).sum())
                p = float(wilcoxon(ours, theirs).pvalue) if len(part) >= 5 else None
                summary[f"{dataset} {protocol}"]["baseline"] = {
                    "store": args.baseline[0], "model": args.baseline[1], "mean": float(theirs.mean()),
                    "ensemble_wins": wins, "wilcoxon_p": p}
                print(f"  against {args.baseline[1]} {100 * theirs.mean():.2f}: ensemble "
                      f"{100 * (ours.mean() - theirs.mean()):+.2f}, better on {wins} of {len(part)} "
                      f"classes" + ("" if p is None else f", paired Wilcoxon p {p:.2g}"))
    command = (f"python benchmarks/seed_ensemble.py {args.directory} --model {args.model} "
               f"--score {args.score} --out {args.out}"
               + ("" if args.baseline is None else f" --baseline {' '.join(args.baseline)}"))
    atomic_write_text(args.out, json.dumps({"command": command, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
