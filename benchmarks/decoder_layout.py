"""Scoring with the conv decoder on channels-last input against NCHW input (issue 18).

The library default (dCVAE-prior, conv backbone) fitted for one epoch on 6,000 MNIST training
images of classes 1-9, then ``decision_function`` (its default score, marginal mode: the decoder
runs under each of the 9 conditions) of 3,000 test images, with the decoder as it is (channels-last
input to the transposed convolutions when no gradient is taken) and with the NCHW forward it had
before. The two alternate ``--repeats`` times at each thread count; medians, their ratio, and
whether the scores are the same bit for bit.

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
    """The decoder's forward before channels-last scoring."""
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
    layouts = {"channels-last": backbones.ConvDecoder.forward, "nchw": nchw_forward}
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
        result[f"threads={threads}"] = {
            "seconds": medians, "nchw_over_channels_last": medians["nchw"] / medians["channels-last"],
            "identical_scores": bool(np.array_equal(scores["nchw"], scores["channels-last"])),
            "runs": seconds}
        print(f"{threads} thread(s): channels-last {medians['channels-last']:.3f} s, NCHW "
              f"{medians['nchw']:.3f} s ({medians['nchw'] / medians['channels-last']:.2f}x); "
              f"identical scores: {result[f'threads={threads}']['identical_scores']}")
    backbones.ConvDecoder.forward = layouts["channels-last"]  # type: ignore[method-assign]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    atomic_write_text(args.out, json.dumps({"command": command, "n_test": len(test), **result},
                                           indent=1) + "\n")


if __name__ == "__main__":
    main()
