"""An anomaly-map figure from the command line, end to end (issue 17): where is an image odd?

Trains the library default (dCVAE-prior, its default settings) on MNIST digits 0-8 with
``dcvae fit``, writes 200 test images (180 normal digits, 20 nines: the anomaly) to a folder,
and runs ``dcvae score --images DIR --maps OUT`` on it. What the maps command wrote, the
contact sheet of the 16 highest-scoring images beside their maps, is copied to ``--out``
with the scores CSV and the AUC of the folder.

    python benchmarks/maps_example.py --epochs 5 --out benchmarks/results/maps_example
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from dcvae.data import load_dataset
from dcvae.evaluation.metrics import roc_auc


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dcvae", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = load_dataset("mnist")
    rng = np.random.default_rng(0)
    normal = rng.choice(np.flatnonzero(data.test.y != 9), 180, replace=False)
    odd = rng.choice(np.flatnonzero(data.test.y == 9), 20, replace=False)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, images = Path(tmp) / "train", Path(tmp) / "images"
        keep = np.flatnonzero(data.train.y != 9)
        for name, x, y in (("train", data.train.x[keep], data.train.y[keep]),
                           ("images", data.test.x[np.r_[normal, odd]], data.test.y[np.r_[normal, odd]])):
            root = Path(tmp) / name
            for i, (image, label) in enumerate(zip(x, y, strict=True)):
                if name == "images":  # one folder, no conditions: the score is marginal
                    path = root / f"{i:03d}-digit{label}.png"
                else:
                    path = root / str(label) / f"{i:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image[0]).save(path)
        model = Path(tmp) / "model"
        run("fit", "--images", str(train_dir), "--epochs", str(args.epochs), "--out", str(model), "--quiet")
        scores, maps = Path(tmp) / "scores.csv", Path(tmp) / "maps"
        run("score", str(model), "--images", str(images), "--no-conditions", "--out", str(scores),
            "--maps", str(maps))
        shutil.copy(maps / "contact-sheet.png", args.out / "contact-sheet.png")
        shutil.copy(scores, args.out / "scores.csv")
        with open(scores, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    labels = np.array([int("digit9" in r["file"]) for r in rows])
    auc = roc_auc(labels, np.array([float(r["score"]) for r in rows]))
    top = sorted(rows, key=lambda r: -float(r["score"]))[:16]
    summary = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "images": len(rows), "anomalies": int(labels.sum()), "auc": auc,
               "nines_among_the_16_highest": sum("digit9" in r["file"] for r in top)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
