"""Issue 18: the training step with and without the trainer's zeroing of tiny Adam moments.

On MNIST most border pixels are inked in a few images only, so the first-layer weights on them get
a gradient now and then, and between two their first moments decay into the subnormal floats,
where x86 arithmetic takes a slow path. The trainer zeroes moments below 1e-30 (second moments
below 1e-36) every 100 steps (``dcvae.training.trainer._drop_tiny_moments``). This script fits the
library's VAE on the MNIST training split (9 classes, class ``--held-out`` left out, as a
leave-one-out run trains) for ``--epochs`` epochs, alternately with the zeroing and without it
(``_DROP_EVERY`` set beyond the run), and reports each epoch's seconds, the subnormal moments at
the end, the ratio of the medians, and whether both fits learned the same weights bit for bit.

    python benchmarks/subnormal_moments.py --epochs 10 --repeats 2 \\
        --out benchmarks/results/subnormal_moments.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.provenance import hardware_summary
from dcvae.io.atomic import atomic_write_text
from dcvae.training import trainer as trainer_module

NEVER = 2**62


def subnormal_moments(optimizer: torch.optim.Optimizer) -> int:
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((m.abs() < tiny) & (m != 0)).sum()) for state in optimizer.state.values()
               for key, m in state.items() if key in ("exp_avg", "exp_avg_sq"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--held-out", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    train = load_dataset("mnist").train
    keep = train.y != args.held_out
    x, c = train.x[keep], train.y[keep].astype(str)

    # every epoch's seconds and the optimiser's subnormal moments after it, through the trainer
    epochs: list[float] = []
    counts: list[int] = []
    original = trainer_module.Trainer._train_epoch

    def timed(self, data, order, epoch, bar):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        result = original(self, data, order, epoch, bar)
        epochs.append(time.perf_counter() - start)
        counts.append(subnormal_moments(self.optimizer))
        return result

    trainer_module.Trainer._train_epoch = timed  # type: ignore[method-assign]
    drop_every = trainer_module._DROP_EVERY
    runs: dict[str, list[dict]] = {"zeroed": [], "kept": []}
    weights: dict[str, torch.Tensor] = {}
    for repeat in range(args.repeats):
        for name, every in (("kept", NEVER), ("zeroed", drop_every)):
            trainer_module._DROP_EVERY = every
            epochs.clear()
            counts.clear()
            det = AnomalyDetector("vae", epochs=args.epochs, seed=0, progress=False, patience=0)
            det.fit(x, c=c, training_scores=False)
            weights[name] = torch.cat([p.detach().flatten() for p in det.model_.parameters()])
            runs[name].append({"epoch_seconds": [round(s, 3) for s in epochs],
                               "subnormal_moments": list(counts), "seconds": round(sum(epochs), 2)})
            print(f"repeat {repeat} {name}: {sum(epochs):.1f} s, epochs "
                  + " ".join(f"{s:.2f}" for s in epochs) + f"; subnormal moments {counts}", flush=True)
    trainer_module._DROP_EVERY = drop_every
    median = {name: float(np.median([r["seconds"] for r in rs])) for name, rs in runs.items()}
    result = {
        "setting": f"library VAE (MLP 784-512-256-16), MNIST training split without class "
                   f"{args.held_out} ({len(x)} images), batch 128, {args.epochs} epochs, "
                   f"{torch.get_num_threads()} threads, seed 0",
        "hardware": hardware_summary(),
        "median_seconds": median,
        "kept_over_zeroed": round(median["kept"] / median["zeroed"], 3),
        "same_weights": bool(torch.equal(weights["kept"], weights["zeroed"])),
        "runs": runs,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    print(f"median {median['kept']:.1f} s kept, {median['zeroed']:.1f} s zeroed: "
          f"{result['kept_over_zeroed']}x; same weights: {result['same_weights']}")
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
