"""A probe for issue 14 (validation data only): is a kNN on dCVAE-prior's codes a better detector
than the kNN on pixels that leads Fashion-MNIST and KMNIST?

Leave-one-out on the *training* split of ``--dataset``: for each held-out class, the normal training
images are split 90/10 (seeded), and the 90% again 90/10 into training and calibration images; the
detectors train on the first part, standardise on the calibration part (the detector's validation
carve), and the AUC is measured on the 10% against the held-out class's training images (no test
image is read). Per class:

- dCVAE-prior as the library fits it (10 epochs, the settings of ``benchmarks/epochs10.toml``),
  scored by the library under ``SCORES`` (``latent-knn``: the mean distance of the code to its
  k = 20 nearest training codes of the condition, minimum over the conditions), each sum
  standardised on the calibration carve as the detector does;
- ``latent-knn k=1`` and ``k=5``: the same distance with other k (what chose k = 20);
- ``pixel knn``: the library's ``knn`` detector at its chosen settings (k = 1, 20,000 training
  images kept).

    python benchmarks/latent_knn_probe.py --dataset fmnist --classes 0 1 2 3 4 5 6 7 8 9 \\
        --out benchmarks/results/latent_knn_probe_fmnist.json   # and the same with mnist

``--beta``, ``--latent-dim`` and ``--backbone`` change dCVAE-prior's settings for a probe of another
choice (``_beta5``, ``_latent32`` and ``_conv`` results), the rest staying as above; ``--param
KEY=VALUE`` any other of its hyper-parameters (``_mismatch1``: ``--param mismatch=1``).

``--feature-knn`` adds a kNN on the encoder's wider, condition-free features of the same model (no
training of its own): ``head-knn k`` on the dense layer's image term (``condition_free``, 256 wide
for conv), ``conv-knn k`` on the convolutions' output (conv only, 3,136 wide), each the mean distance
to the k nearest of at most ``FEATURE_CODES`` normal training images' features (all conditions
together: the features do not see c), and their standardised sums with the library's bases
(``+`` names, standardised on the calibration carve as the detector does). ``+pixel`` sums add the
pixel kNN, to see what a hybrid would buy.

``--save-scores DIR`` writes each class's per-image scores to ``DIR/<dataset>_class<h>.npz`` (the
calibration, validation and anomaly images' ``recon``, ``latent``, ``latent-knn``, ``latent-knn k=5``,
``head-knn k=5``/``k=20`` and ``pixel``), so that ``benchmarks/combine_probe.py`` can try other
combinations of them without training again. They are large and stay out of the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from dcvae.data import load_dataset
from dcvae.data.split import stratified_split
from dcvae.detector import AnomalyDetector
from dcvae.io.atomic import atomic_write_text
from dcvae.scoring import MARGINAL, calibrate, parse_score

# dCVAE-prior's settings in benchmarks/epochs10.toml (latent 16, batch 128, lr 1e-3 and no early
# stopping are the detector's own arguments)
PARAMS = {"beta": 1.0, "prior_means": "fixed"}


SCORES = ("recon+latent", "recon", "latent", "latent-knn", "recon+latent-knn", "latent+latent-knn",
          "recon+latent+latent-knn")


@torch.no_grad()
def latent_knn(model, x: np.ndarray, k: int, batch: int = 2048) -> np.ndarray:
    """The library's latent-knn distance with another k, in marginal mode (minimum over c)."""
    model.eval()
    best = np.full(len(x), np.inf)
    for j in range(model.n_conditions):
        for start in range(0, len(x), batch):
            xb = model.prepare(torch.as_tensor(x[start:start + batch]))
            c = torch.full((xb.shape[0],), j, dtype=torch.long)
            mu, _ = model.encode(xb, model.condition_onehot(c, xb.shape[0]))
            d = model.latent_codes.distance(mu, c, k).numpy()
            np.minimum(best[start:start + batch], d, out=best[start:start + batch])
    return best


#: training images whose features the feature kNN keeps (a seeded subsample above it)
FEATURE_CODES = 20_000


@torch.no_grad()
def features(model, x: np.ndarray, batch: int = 1024) -> dict[str, np.ndarray]:
    """The encoder's condition-free features of ``x``: the dense layer's image term, and for conv
    the convolutions' output."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {"head": [], "conv": []}
    for start in range(0, len(x), batch):
        xb = model.prepare(torch.as_tensor(x[start:start + batch]))
        out["head"].append(model.encoder.condition_free(xb).numpy())
        if hasattr(model.encoder, "features"):
            out["conv"].append(model.encoder.features(xb).numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def feature_knn(train: np.ndarray, queries: list[np.ndarray], k: int, seed: int) -> list[np.ndarray]:
    """Mean distance of each query row to its k nearest training rows."""
    if len(train) > FEATURE_CODES:
        train = train[np.random.default_rng(seed).choice(len(train), FEATURE_CODES, replace=False)]
    index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(train)
    return [index.kneighbors(q)[0].mean(axis=1) for q in queries]


def standardised_sum(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum of (calibration, validation, anomaly) scores, each standardised on its calibration part."""
    val = sum((v - c.mean()) / max(c.std(), 1e-12) for c, v, _ in parts)
    anom = sum((a - c.mean()) / max(c.std(), 1e-12) for c, _, a in parts)
    return val, anom


def _param(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--classes", type=int, nargs="+", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=PARAMS["beta"], help="dCVAE-prior's KL weight")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--backbone", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", type=_param,
                        help="another of dCVAE-prior's hyper-parameters (a number), e.g. mismatch=1")
    parser.add_argument("--feature-knn", action="store_true",
                        help="add the kNN on the encoder's condition-free features")
    parser.add_argument("--save-scores", type=Path, default=None, metavar="DIR",
                        help="write each class's per-image scores here (for combine_probe.py)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    train = load_dataset(args.dataset).train
    rows = []
    for held in args.classes:
        start = time.perf_counter()
        normal = np.flatnonzero(train.y != held)
        rest, val_i = stratified_split(train.y[normal], train_size=0.9, seed=args.seed)
        fit_i, cal_i = stratified_split(train.y[normal[rest]], train_size=0.9, seed=args.seed)
        fit_i, cal_i = normal[rest[fit_i]], normal[rest[cal_i]]
        x_fit, c_fit = train.x[fit_i], train.y[fit_i].astype(str)
        x_cal, c_cal = train.x[cal_i], train.y[cal_i].astype(str)
        x_val, x_anom = train.x[normal[val_i]], train.x[train.y == held]
        truth = np.r_[np.zeros(len(x_val)), np.ones(len(x_anom))]

        def auc(normal_scores: np.ndarray, anomaly_scores: np.ndarray, truth=truth) -> float:
            return float(roc_auc_score(truth, np.r_[normal_scores, anomaly_scores]))

        # the calibration carve is given, so that the latent kNN is standardised on the same images
        det = AnomalyDetector("dcvae-prior", epochs=args.epochs, seed=args.seed, progress=False,
                              params={**PARAMS, "beta": args.beta, **dict(args.param)},
                              latent_dim=args.latent_dim,
                              backbone=args.backbone, batch_size=128, lr=1e-3, patience=0)
        det.fit(x_fit, c=c_fit, validation=(x_cal, c_cal), training_scores=False)
        row: dict[str, float | int] = {"class": held}
        bases = ("recon", "latent", "latent-knn")
        b_val, b_anom = det.base_scores(x_val, bases=bases), det.base_scores(x_anom, bases=bases)
        for score in SCORES:
            fitted = calibrate(parse_score(score), det.validation_base_scores_[MARGINAL],
                               det.contamination).fitted
            row[score] = auc(fitted(b_val), fitted(b_anom))
        for k in (1, 5):
            row[f"latent-knn k={k}"] = auc(latent_knn(det.model_, x_val, k),
                                           latent_knn(det.model_, x_anom, k))
        pixel = AnomalyDetector("knn", params={"n_neighbors": 1}, seed=args.seed).fit(x_fit, c=c_fit)
        row["pixel knn"] = auc(pixel.decision_function(x_val), pixel.decision_function(x_anom))
        if args.feature_knn:
            add_feature_knn(row, det, pixel, (x_fit, x_cal, x_val, x_anom), auc, args.seed)
        if args.save_scores is not None:
            save_scores(args.save_scores / f"{args.dataset}_class{held}.npz", det, pixel,
                        (x_fit, x_cal, x_val, x_anom), args.seed)
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
    keys = [k for k in rows[0] if k not in ("class", "seconds")]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print("mean", " ".join(f"{k}={v:.4f}" for k, v in mean.items()))
    result = {"dataset": args.dataset, "classes": args.classes, "epochs": args.epochs, "seed": args.seed,
              "beta": args.beta, "latent_dim": args.latent_dim, "params": dict(args.param),
              "backbone": args.backbone, "rows": rows, "mean": mean,
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


def add_feature_knn(row: dict, det: AnomalyDetector, pixel: AnomalyDetector, images: tuple,
                    auc, seed: int) -> None:
    """``row`` gets the feature kNN columns (see the module's docstring)."""
    x_fit, x_cal, x_val, x_anom = images
    feats = [features(det.model_, x) for x in images]
    bases = ("recon", "latent", "latent-knn")
    lib = {b: [det.base_scores(x, bases=bases)[b] for x in (x_cal, x_val, x_anom)] for b in bases}
    lib["pixel"] = [pixel.decision_function(x) for x in (x_cal, x_val, x_anom)]
    for space in feats[0]:
        for k in (5, 20, 50):
            cal, val, anom = feature_knn(feats[0][space], [f[space] for f in feats[1:]], k, seed)
            name = f"{space}-knn k={k}"
            row[name] = auc(val, anom)
            if k == 20:
                lib[f"{space}-knn"] = [cal, val, anom]
    sums = {"recon+latent+head-knn": ("recon", "latent", "head-knn"),
            "recon+latent+latent-knn+head-knn": ("recon", "latent", "latent-knn", "head-knn"),
            "latent-knn+head-knn": ("latent-knn", "head-knn"),
            "recon+head-knn": ("recon", "head-knn"), "latent+head-knn": ("latent", "head-knn"),
            "recon+latent+latent-knn+pixel": ("recon", "latent", "latent-knn", "pixel")}
    if "conv-knn" in lib:
        sums |= {"recon+latent+conv-knn": ("recon", "latent", "conv-knn"),
                 "recon+latent+latent-knn+conv-knn": ("recon", "latent", "latent-knn", "conv-knn")}
    for name, parts in sums.items():
        row[name] = auc(*standardised_sum([tuple(lib[p]) for p in parts]))


def save_scores(path: Path, det: AnomalyDetector, pixel: AnomalyDetector, images: tuple,
                seed: int) -> None:
    """The per-image scores of ``--save-scores``: ``<score>/<part>`` arrays, part in cal/val/anom."""
    _, *parts = images
    bases = ("recon", "latent", "latent-knn")
    out: dict[str, np.ndarray] = {}
    head = [features(det.model_, x)["head"] for x in images]
    head_knn = {k: feature_knn(head[0], head[1:], k, seed) for k in (5, 20)}
    for i, (name, x) in enumerate(zip(("cal", "val", "anom"), parts, strict=True)):
        for b, v in det.base_scores(x, bases=bases).items():
            out[f"{b}/{name}"] = v
        out[f"latent-knn k=5/{name}"] = latent_knn(det.model_, x, 5)
        for k, dist in head_knn.items():
            out[f"head-knn k={k}/{name}"] = dist[i]
        out[f"pixel/{name}"] = pixel.decision_function(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    main()
