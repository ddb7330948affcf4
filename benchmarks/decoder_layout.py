"""The conv decoder's scoring path against its plain layers (issue 18).

The library default (dCVAE-prior, conv backbone) fitted for one epoch on 6,000 MNIST training
images of classes 1-9, then ``decision_function`` (its default score, marginal mode: the decoder
runs under each of the 9 conditions) of 3,000 test images, with the decoder as it is (when no
gradient is taken: channels-last input to the first transposed convolution, the last one by
phases) and with its plain layers on NCHW input, as in training. The two alternate ``--repeats``
times at each thread count; medians, their ratio, and how far the scores are apart (the largest
difference over the scores' standard deviation).

    python benchmarks/decoder_layout.py --out benchmarks/results/decoder_layout.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dcvae.nn.backbones as backbones
from dcvae import AnomalyDetector
from dcvae.data import load_dataset
from dcvae.io.atomic import atomic_write_text


def nchw_forward(self: backbones.ConvDecoder, z: torch.Tensor, c_onehot: torch.Tensor) -> torch.Tensor:
    """The decoder's plain layers on NCHW input (its training path, and its forward before)."""
    h = self.head(backbones._with_condition(z, c_onehot))
    return self.deconv(h.view(-1, *self.grid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    mnist = load_dataset("mnist")
    normal = mnist.train.y != 0
    detector = AnomalyDetector(epochs=1, progress=False).fit(mnist.train.x[normal][:6000],
                                                             c=mnist.train.y[normal][:6000])
    test = mnist.test.x[:3000]
    layouts = {"scoring path": backbones.ConvDecoder.forward, "plain": nchw_forward}
    result: dict[str, Any] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        seconds: dict[str, list[float]] = {name: [] for name in layouts}
        scores: dict[str, np.ndarray] = {}
        for forward in layouts.values():  # warm-up
            backbones.ConvDecoder.forward = forward  # type: ignore[method-assign]
            detector.decision_function(test[:300])
        for _ in range(args.repeats):
            for name, forward in layouts.items():
                backbones.ConvDecoder.forward = forward  # type: ignore[method-assign]
                start = time.perf_counter()
                scores[name] = detector.decision_function(test)
                seconds[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(v) for name, v in seconds.items()}
        # against the spread of the scores: a standardised score may be near 0, so not relative
        apart = float(np.max(np.abs(scores["plain"] - scores["scoring path"])) / np.std(scores["plain"]))
        result[f"threads={threads}"] = {
            "seconds": medians, "plain_over_scoring_path": medians["plain"] / medians["scoring path"],
            "max_score_difference_over_std": apart, "runs": seconds}
        print(f"{threads} thread(s): scoring path {medians['scoring path']:.3f} s, plain "
              f"{medians['plain']:.3f} s ({medians['plain'] / medians['scoring path']:.2f}x); "
              f"scores at most {apart:.2g} standard deviations apart")
    backbones.ConvDecoder.forward = layouts["scoring path"]  # type: ignore[method-assign]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    atomic_write_text(args.out, json.dumps({"command": command, "n_test": len(test), **result},
                                           indent=1) + "\n")


if __name__ == "__main__":
    main()
