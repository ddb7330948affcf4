"""Every score of the family on every run of one or more benchmark stores, from saved base scores.

Each run of a grid with ``save_scores = true`` keeps its per-sample base scores (recon, elbo, kl,
prior) of the test split, the normal validation carve and the held-out anomalies' training
images. From them this script builds every score of ``dcvae.scoring.family`` -- the complexity
correction (the PNG length of each image), typicality, standardised sums -- fitting each on the
validation carve only, exactly as the library does, and measures:
- ``validation_auc``: validation carve vs held-out training images (what selection may look at);
- ``auc``: the test split (what is reported).

The selection rule (issue 6): the default score is the one with the best mean *validation* AUC of
dCVAE on MNIST and Fashion-MNIST; KMNIST and EMNIST are only tested, with that choice unchanged.

    python benchmarks/score_study.py benchmarks/results/paper benchmarks/results/tuned \\
        --out benchmarks/results/score_study.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dcvae.benchmark import ResultStore, RunSpec
from dcvae.benchmark.runner import cached_dataset
from dcvae.evaluation.metrics import roc_auc
from dcvae.evaluation.protocols import make_protocol
from dcvae.evaluation.run import validation_anomalies
from dcvae.io.atomic import atomic_write_text
from dcvae.scoring import fit_score, input_complexity, parse_score

BASES = ("recon", "elbo", "kl", "prior", "latent", "ic-elbo")
SCORES = (*BASES, *(f"typical-{b}" for b in BASES),
          "recon+kl", "recon+prior", "typical-elbo+kl", "typical-recon+typical-kl",
          "ic-elbo+typical-elbo", "typical-ic-elbo+kl", "recon+latent", "prior+latent",
          "recon+typical-latent")
SAVED = ("recon", "elbo", "kl", "prior", "latent")  # the model's own base scores a run may save
CHOOSING = ("mnist", "fmnist")
PAPER = {"mnist": 88.31, "fmnist": 88.63, "emnist-byclass": 78.98, "kmnist": 61.02}


class Complexity:
    """PNG length of each image, remembered by content (the same image recurs across runs)."""

    def __init__(self) -> None:
        self.memo: dict[bytes, float] = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        keys = [im.tobytes() for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self.memo]
        if todo:
            for i, value in zip(todo, input_complexity(images[todo]), strict=True):
                self.memo[keys[i]] = float(value)
        return np.array([self.memo[k] for k in keys])


def run_scores(directory: Path, record: dict, complexity: Complexity) -> dict[str, dict[str, float]]:
    spec = RunSpec.from_dict(record)
    data = cached_dataset(spec.dataset, None)
    settings = dict(spec.settings)
    split = make_protocol(spec.protocol, data, spec.target_class, seed=spec.seed,
                          train_size=settings.get("train_size"),
                          validation_fraction=settings.get("validation_fraction", 0.1))
    held_out = validation_anomalies(data, spec)
    with np.load(directory / record["scores_file"], allow_pickle=False) as raw:
        saved = [b for b in SAVED if f"test_{b}" in raw.files]
        parts = {part: {b: raw[f"{part}_{b}"].astype(np.float64) for b in saved}
                 for part in ("test", "validation", "held_out")}
        labels = raw["test_labels"]
    for part, images in (("test", split.test.x), ("validation", split.validation.x),
                         ("held_out", held_out.x)):
        assert len(images) == len(parts[part]["elbo"]), "the carve does not match the saved scores"
        parts[part]["ic-elbo"] = parts[part]["elbo"] - complexity(images)
    out = {}
    for name in SCORES:
        if not set(parse_score(name).bases) <= set(parts["validation"]):
            continue  # a base score this run did not record
        fitted = fit_score(parse_score(name), parts["validation"])  # normal validation data only
        test, normal, held = (fitted(parts[p]) for p in ("test", "validation", "held_out"))
        out[name] = {"auc": roc_auc(labels, test),
                     "validation_auc": roc_auc(np.r_[np.zeros(len(normal)), np.ones(len(held))],
                                               np.r_[normal, held])}
    return out


def variant_labels(records: list[dict]) -> dict[str, str]:
    """' [latent_dim=8]' for the settings that vary between runs of one model on one dataset,
    '' if none do (a dataset's own settings, like the paper's EMNIST lr, are not a variant)."""
    by_model: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        by_model[(r["model"], r["dataset"])].append(r)
    labels = {}
    for runs in by_model.values():
        keys = sorted({k for r in runs for k in r["settings"]})
        varying = [k for k in keys if len({json.dumps(r["settings"].get(k)) for r in runs}) > 1]
        for r in runs:
            parts = [f"{k}={r['settings'].get(k)}" for k in varying]
            labels[r["key"]] = f" [{', '.join(parts)}]" if parts else ""
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--protocol", default="leave-one-out")
    args = parser.parse_args()
    complexity = Complexity()
    rows: list[dict] = []
    for directory in args.directories:
        records = [r for r in ResultStore(directory).records()
                   if r.get("status") == "ok" and r.get("scores_file") and r["protocol"] == args.protocol]
        labels = variant_labels(records)
        for record in records:
            config = directory.name + labels[record["key"]]
            for name, values in run_scores(directory, record, complexity).items():
                rows.append({"config": config, "model": record["model"], "dataset": record["dataset"],
                             "class": record["class"], "seed": record["seed"], "score": name, **values})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["config"], row["model"], row["dataset"], row["score"])].append(row)
    table = [{"config": c, "model": m, "dataset": d, "score": s, "runs": len(g),
              "classes": len({r["class"] for r in g}), "seeds": len({r["seed"] for r in g}),
              "auc_mean": float(np.mean([r["auc"] for r in g])),
              "auc_std": float(np.std([r["auc"] for r in g])),
              "validation_auc_mean": float(np.mean([r["validation_auc"] for r in g]))}
             for (c, m, d, s), g in sorted(groups.items())]
    # the selection: dCVAE's best mean validation AUC over the choosing datasets, per config
    choice = {}
    for config in sorted({r["config"] for r in table}):
        candidates = defaultdict(list)
        for r in table:
            if r["config"] == config and r["model"] == "dcvae" and r["dataset"] in CHOOSING:
                candidates[r["score"]].append(r["validation_auc_mean"])
        full = {s: float(np.mean(v)) for s, v in candidates.items() if len(v) == len(CHOOSING)}
        if full:
            choice[config] = max(full, key=full.get)
            print(f"{config}: dCVAE's best validation AUC on {'+'.join(CHOOSING)}: "
                  f"{choice[config]} {full[choice[config]]:.4f}")
    atomic_write_text(args.out, json.dumps({"command": "python benchmarks/score_study.py "
                                            + " ".join(map(str, args.directories))
                                            + f" --out {args.out}",
                                            "choice": choice, "table": table}, indent=1))
    print_table(table, choice)


def print_table(table: list[dict], choice: dict[str, str]) -> None:
    datasets = [d for d in ("mnist", "fmnist", "kmnist", "emnist-byclass")
                if any(r["dataset"] == d for r in table)]
    for config in sorted({r["config"] for r in table}):
        print(f"\n## {config}: test AUC × 100, mean ± std over classes and seeds "
              f"(chosen on MNIST+FMNIST validation AUC: {choice.get(config)})")
        print("| model | score | " + " | ".join(datasets) + " |")
        print("|---|---|" + "---|" * len(datasets))
        cells = {(r["model"], r["score"], r["dataset"]): r for r in table if r["config"] == config}
        for model in ("dcvae", "vae", "cvae", "factorvae", "beta-vae", "rfvae", "beta-tcvae"):
            for score in SCORES:
                line = []
                for d in datasets:
                    r = cells.get((model, score, d))
                    line.append("—" if r is None else
                                f"{100 * r['auc_mean']:.2f} ± {100 * r['auc_std']:.2f} ({r['runs']})")
                if any(c != "—" for c in line):
                    mark = " **(default)**" if score == choice.get(config) else ""
                    print(f"| {model} | {score}{mark} | " + " | ".join(line) + " |")
    print("\npaper Table I, dCVAE: " + ", ".join(f"{d} {v}" for d, v in PAPER.items()))


if __name__ == "__main__":
    main()
