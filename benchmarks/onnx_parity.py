"""ONNX parity on real MNIST (issue 17): does the exported graph score as the library does?

For every VAE of ``dcvae.models.MODELS`` and both backbones: a detector trained (by default for one
epoch on 300 MNIST training images; ``--epochs`` and ``--n-train`` say otherwise) on the nine
classes 0-8, conditioned on the class, exported, and both the library and onnxruntime score 1,000
MNIST test images in both modes, under the model's default score and under ``latent`` and ``elbo``.
Per pair and score: the largest relative difference,
|onnx - library| / max(|library|, scale) (scale 1 for a base score; for a standardised sum, the
base scores' magnitude over their sd, as ``tests/export/test_onnx.py`` does), and how many 0/1
flags differ at the calibrated threshold. For ``latent`` also the difference relative to the
magnitude of the terms it sums (see ``terms``): a log-density near zero is a difference of terms
near 30, and float32 rounds those terms, in the library as in onnxruntime.

    python benchmarks/onnx_parity.py --out benchmarks/results/onnx_parity.json
    python benchmarks/onnx_parity.py --n-train 5000 --epochs 5 --models cvae dcvae dcvae-prior \
        --out benchmarks/results/onnx_parity_5k.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.export.exporter import export_onnx
from dcvae.export.runtime import OnnxDetector
from dcvae.io.atomic import atomic_write_text
from dcvae.models import MODELS
from dcvae.scoring.family import fit_score, parse_score

N_TRAIN, N_TEST = 300, 1000


def scale(det: AnomalyDetector, mode: str) -> float:
    fitted = det.score_fits_[mode]
    if not fitted.stats:
        return 1.0
    return sum(max(1.0, abs(mean)) / sd for mean, sd in fitted.stats.values())


def terms(det: AnomalyDetector, ref: np.ndarray, names: np.ndarray | None) -> np.ndarray:
    """The magnitude of the terms whose sum is each ``latent`` score. The score is
    0.5 (Mahalanobis + log det S_c + d log 2 pi); where log det S_c < 0 it cancels against the two
    positive terms, whose magnitude is then score + |log det S_c| (an identity). Float32 rounds a
    fraction of that, not of |score|. S_c is the given-mode condition's; in marginal mode the
    smallest |log det| over the conditions (the strictest)."""
    logdets = det.model_.latent_gaussians.logdets.numpy().astype(np.float64)
    cancelled = np.maximum(0.0, -logdets)
    if names is None or not det.model_.conditional:
        return ref + cancelled.min()
    index = {name: i for i, name in enumerate(det.model_.config.condition_names)}
    return ref + cancelled[[index[n] for n in names]]


def parity(det: AnomalyDetector, score: str, x: np.ndarray, names: np.ndarray, folder: Path) -> dict:
    det.anomaly_score_ = parse_score(score).name
    det.score_fits_ = {mode: fit_score(parse_score(score), det.validation_base_scores_[mode])
                       for mode in ("given", "marginal")}
    path = folder / f"{score}.onnx"
    export_onnx(det, path)
    runtime = OnnxDetector(path)
    out = {}
    for c, mode in ((None, "marginal"), (names, "given")):
        ref, got = det.decision_function(x, c), runtime.decision_function(x, c)
        rel = np.abs(got - ref) / np.maximum(np.abs(ref), scale(det, mode))
        out[mode] = {"max_relative": float(rel.max()), "over_1e-5": int((rel > 1e-5).sum()),
                     "flags_differ": int((runtime.predict(x, c) != det.predict(x, c)).sum())}
        if score == "latent":
            out[mode]["max_relative_to_terms"] = float(
                (np.abs(got - ref) / np.maximum(terms(det, ref, c), 1.0)).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    data = load_dataset("mnist")
    normal = np.flatnonzero(data.train.y != 9)[:args.n_train]
    x_train, c_train = data.train.x[normal], data.train.y[normal].astype(str)
    test = np.flatnonzero(data.test.y != 9)[:N_TEST]
    x, names = data.test.x[test], data.test.y[test].astype(str)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for backbone in ("mlp", "conv"):
                det = AnomalyDetector(model, epochs=args.epochs, backbone=backbone, batch_size=64,
                                      progress=False)
                with warnings.catch_warnings():  # 1-epoch models may collapse: expected here
                    warnings.simplefilter("ignore")
                    det.fit(x_train, c=c_train)
                for score in dict.fromkeys((det.anomaly_score_, "latent", "latent-knn", "elbo")):
                    row = {"model": model, "backbone": backbone, "score": score,
                           **parity(det, score, x, names, Path(tmp))}
                    worst = max(row["marginal"]["max_relative"], row["given"]["max_relative"])
                    flags = row["marginal"]["flags_differ"] + row["given"]["flags_differ"]
                    to_terms = "" if score != "latent" else " (to its terms {:.2g})".format(max(
                        row["marginal"]["max_relative_to_terms"], row["given"]["max_relative_to_terms"]))
                    print(f"{model:<11} {backbone:<4} {score:<13} max relative {worst:.2g}{to_terms}  "
                          f"flags differing {flags}", flush=True)
                    rows.append(row)
    worst = max(max(r["marginal"]["max_relative"], r["given"]["max_relative"]) for r in rows)
    print(f"worst over {len(rows)} model/backbone/score rows: {worst:.2g}")
    latent_worst = max(r[m]["max_relative_to_terms"] for r in rows if r["score"] == "latent"
                       for m in ("marginal", "given"))
    print(f"worst latent row relative to its terms: {latent_worst:.2g}")
    options = "".join(f" {flag} {value}" for flag, value, default in (
        ("--n-train", args.n_train, N_TRAIN), ("--epochs", args.epochs, 1)) if value != default)
    models = "" if args.models == sorted(MODELS) else " --models " + " ".join(args.models)
    result = {"n_train": args.n_train, "n_test": N_TEST, "epochs": args.epochs, "rows": rows, "worst": worst,
              "worst_latent_to_terms": latent_worst,
              "command": f"python benchmarks/onnx_parity.py{options}{models} --out {args.out.as_posix()}"}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
