"""What keeping freed memory in the process (``dcvae.training.allocator``) buys (issue 18).

Each measurement runs in a fresh process, because glibc's thresholds are process-wide and cannot
be put back: ``kept`` is the library as it is, ``glibc`` the same code with the thresholds left at
glibc's own (dynamic) values. The two alternate, ``--repeats`` times each, and the figures are
medians with their ratio. Measured in each process, on Fashion-MNIST at 2 threads (or
``--threads``):

- the training step of the library default, dCVAE-prior on the conv backbone (batch 128), and of
  the MLP (784-512-256-(16)): ms per step over ``--steps`` steps after a warm-up, and the minor
  page faults per step;
- marginal scoring (every one of the 10 conditions tried) of 3,000 test images by the conv
  model (``anomaly_scores``, score ``recon``), seconds;
- with ``--demo``, the wall time of ``dcvae demo`` (the README's first command) as a whole.

    python benchmarks/allocator.py --out benchmarks/results/allocator.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("kept", "glibc")
# `dcvae demo` with glibc's own thresholds: the flag set before the command runs
DEMO = """
import sys
from dcvae.training import allocator
if sys.argv[1] == "glibc":
    allocator._applied = False
from dcvae.cli import main
main(["demo"], standalone_mode=False)
"""


def measure(mode: str, steps: int) -> dict[str, float]:
    """One process's figures (run as ``--child MODE``)."""
    from dcvae.training import allocator

    if mode == "glibc":
        allocator._applied = False  # as if glibc were not ours to tune: nothing is set
    import torch

    from dcvae.data import load_dataset
    from dcvae.models import build_model
    from dcvae.scoring import anomaly_scores

    fmnist = load_dataset("fmnist")
    x = torch.from_numpy(fmnist.train.x[:128 * 40])
    c = torch.from_numpy(fmnist.train.y[:128 * 40]).long()
    out: dict[str, float] = {"kept_by_library": float(allocator.keep_freed_memory())}
    for backbone in ("conv", "mlp"):
        torch.manual_seed(0)
        net = build_model("dcvae-prior", input_shape=[1, 28, 28], backbone=backbone,
                          hidden_dims=[512, 256], latent_dim=16,
                          condition_names=[str(i) for i in range(10)])
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)

        def run(n: int, net=net, optimizer=optimizer) -> None:
            for s in range(n):
                batch = slice((s % 40) * 128, (s % 40 + 1) * 128)
                loss = net(net.prepare(x[batch]), c[batch]).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        run(20)  # warm-up
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        run(steps)
        out[f"{backbone} train ms per step"] = (time.perf_counter() - start) / steps * 1e3
        out[f"{backbone} page faults per step"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
        if backbone == "conv":
            test = fmnist.test.x[:3000]
            anomaly_scores(net, test[:300])  # warm-up
            start = time.perf_counter()
            anomaly_scores(net, test)
            out["conv marginal scoring of 3000, s"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--demo", action="store_true", help="also time `dcvae demo` in each mode")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.child, args.steps)))
        return
    if args.out is None:
        parser.error("--out is required")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:  # alternating, so that a change in the machine's load hits both
            done = subprocess.run([sys.executable, __file__, "--child", mode, "--steps", str(args.steps),
                                   "--threads", str(args.threads)], env=env, capture_output=True,
                                  text=True, check=True)
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            if args.demo:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", DEMO, mode], env=env, capture_output=True,
                               check=True)
                runs[mode][-1]["dcvae demo, s"] = time.perf_counter() - start
    medians = {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
               for mode, rows in runs.items()}
    ratios = {key: medians["glibc"][key] / medians["kept"][key]
              for key in medians["kept"] if "ms" in key or ", s" in key}
    for key in medians["kept"]:
        print(f"{key:40s} kept {medians['kept'][key]:10.3f}   glibc {medians['glibc'][key]:10.3f}"
              + (f"   glibc/kept {ratios[key]:.3f}" if key in ratios else ""))
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    result = {"command": command, "threads": args.threads, "repeats": args.repeats,
              "medians": medians, "time_glibc_over_kept": ratios, "runs": runs}
    from dcvae.io.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
