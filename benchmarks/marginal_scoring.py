"""Marginal-mode scoring speed: the encoder's condition-free part once per sample, or K times.

    .venv/bin/python benchmarks/marginal_scoring.py --out benchmarks/results/marginal_scoring.json

Marginal mode scores every sample under each of the K training conditions. Since the condition
enters the encoder only at its first layer (MLP) or after the convolutions (conv), the library
runs that condition-free part once per sample (``VAE.encode_each``). This script times the four
base scores of real EMNIST ByClass test images (dCVAE, latent 16, untrained weights: the time does
not depend on them) both ways, alternating the two so that both see the same machine load, and
checks that they agree. Timing depends on the load, so the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dcvae.data import load_dataset
from dcvae.models import build_model
from dcvae.scoring import score_table

SCORES = ("recon", "elbo", "kl", "prior")


def repeated_encoder(model):
    """The path before ``encode_each``: the whole encoder on each (sample, condition) pair."""
    def encode_each(x, c_onehot):
        return model.encode(x.repeat_interleave(c_onehot.shape[0] // x.shape[0], dim=0), c_onehot)
    return encode_each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/marginal_scoring.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = load_dataset("emnist-byclass").test.x[:args.samples]
    rows = []
    for backbone, k in (("mlp", 10), ("mlp", 62), ("conv", 10), ("conv", 62)):
        torch.manual_seed(0)
        model = build_model("dcvae", input_shape=[1, 28, 28], backbone=backbone, latent_dim=16,
                            condition_names=[str(i) for i in range(k)]).eval()
        times: dict[str, list[float]] = {"once": [], "repeated": []}
        results = {}
        for _ in range(args.repeats):
            for way in ("once", "repeated"):
                if way == "repeated":
                    model.encode_each = repeated_encoder(model)
                start = time.perf_counter()
                results[way] = score_table(model, x, None, scores=SCORES)
                times[way].append(time.perf_counter() - start)
                if way == "repeated":
                    del model.encode_each
        gap = max(float(np.max(np.abs(results["once"][s] - results["repeated"][s])
                                / np.maximum(np.abs(results["repeated"][s]), 1.0))) for s in SCORES)
        once, repeated = statistics.median(times["once"]), statistics.median(times["repeated"])
        rows.append({"backbone": backbone, "conditions": k, "samples": len(x),
                     "samples_per_s_once": len(x) / once, "samples_per_s_repeated": len(x) / repeated,
                     "speedup": repeated / once, "max_relative_score_gap": gap})
        print(f"{backbone:4s} K={k:2d}: {len(x) / repeated:7.0f} → {len(x) / once:7.0f} samples/s "
              f"(× {repeated / once:.2f}), largest relative score gap {gap:.1e}")
    args.out.write_text(json.dumps({
        "command": "python benchmarks/marginal_scoring.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "threads": 1, "load_average_after": os.getloadavg(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
