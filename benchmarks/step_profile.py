"""Where one training step's time goes (issue 18): the MLP VAE of ``throughput.py``, at ``--threads``.

Two measurements, printed and written to ``--out``:

- **by operator**: the step's time against ``throughput.py``'s layer ceiling (both at ``--threads``,
  interleaved, medians of 3), then PyTorch's profiler over ``--steps`` steps of the library's
  ``Trainer`` on Fashion-MNIST (784-512-256-(16)-256-512-784, batch 128), self time grouped into the matrix
  products (``mm``, ``addmm``), the Adam update, the Bernoulli log-likelihood (``log_sigmoid``
  forward and backward, ``sigmoid``) and everything else;
- **fixed cost per step**: the same step on a network so small (16-8-8-(2)) that its arithmetic
  is nothing, against a minimal hand-written PyTorch loop of the same model (no library code), so
  what the library adds to PyTorch's own per-step cost shows apart from it.

    python benchmarks/step_profile.py --out benchmarks/results/step_profile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from dcvae.data import load_dataset
from dcvae.io.atomic import atomic_write_text
from dcvae.models import build_model
from dcvae.training import TensorData, TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).parent))
from throughput import layer_ceiling  # noqa: E402  (a sibling script, not a package)

GROUPS = {"matrix products": ("aten::mm", "aten::addmm"),
          "Adam update": ("aten::_fused_adam_", "Optimizer.step#Adam.step", "aten::_foreach_add_",
                          "Optimizer.zero_grad#Adam.zero_grad"),
          "Bernoulli log-likelihood": ("aten::log_sigmoid_forward", "aten::log_sigmoid_backward",
                                       "aten::sigmoid", "aten::binary_cross_entropy_with_logits")}


def trainer(shape: list[int], hidden: list[int], latent: int, batch: int) -> Trainer:
    torch.manual_seed(0)
    net = build_model("vae", input_shape=shape, backbone="mlp", hidden_dims=hidden, latent_dim=latent)
    return Trainer(net, TrainConfig(epochs=1, batch_size=batch, patience=0, device="cpu"), progress=False)


def by_operator(steps: int) -> dict[str, float]:
    fmnist = load_dataset("fmnist").train
    x, y = fmnist.x[:128 * steps], fmnist.y[:128 * steps]
    tr = trainer([1, 28, 28], [512, 256], 16, 128)
    data = TensorData.from_numpy(x)
    tr.fit(data)  # warm-up
    ceilings, times = [], []
    for _ in range(3):  # interleaved: the layer ceiling of throughput.py beside each epoch
        ceilings.append(layer_ceiling(tr.model, x, y, torch.float32, "cpu")[0])
        start = time.perf_counter()
        tr.fit(data)
        times.append((time.perf_counter() - start) / steps)
    unprofiled = statistics.median(times)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tr.fit(data)
    grouped: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        group = next((g for g, names in GROUPS.items() if event.key in names), "everything else")
        grouped[group] += event.self_cpu_time_total / 1e3 / steps  # ms per step
    total = sum(grouped.values())
    ceiling = statistics.median(ceilings)
    return {"ms_per_step_unprofiled": unprofiled * 1e3, "ms_per_step_profiled": total,
            "ceiling_samples_per_second": ceiling, "train_over_ceiling": 128 / unprofiled / ceiling,
            **{f"{g} (ms per step)": v for g, v in grouped.items()},
            **{f"{g} (share)": v / total for g, v in grouped.items()}}


def fixed_cost(n: int = 4096, batch: int = 4) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    tr = trainer([1, 4, 4], [8, 8], 2, batch)
    data = TensorData.from_numpy(x)
    tr.fit(data)
    start = time.perf_counter()
    tr.fit(data)
    library = (time.perf_counter() - start) / (n // batch)

    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                              torch.nn.ReLU(), torch.nn.Linear(8, 4))
    dec = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                              torch.nn.ReLU(), torch.nn.Linear(8, 16))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, fused=True)
    flat = torch.from_numpy(x.reshape(n, -1)).float() / 255

    def epoch() -> None:
        order = torch.randperm(n)
        for s in range(0, n, batch):
            xb = flat[order[s:s + batch]]
            mu, logvar = enc(xb).chunk(2, 1)
            logits = dec(mu + torch.randn_like(mu) * (0.5 * logvar).exp())
            rec = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum") / len(xb)
            kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / len(xb)
            loss = rec + kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach()), float(rec.detach()), float(kl.detach())

    epoch()
    start = time.perf_counter()
    epoch()
    minimal = (time.perf_counter() - start) / (n // batch)
    return {"library_us_per_step": library * 1e6, "minimal_loop_us_per_step": minimal * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"by_operator": by_operator(args.steps), "fixed_cost_tiny_network": fixed_cost(),
              "threads": args.threads, "torch": torch.__version__,
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    for section in ("by_operator", "fixed_cost_tiny_network"):
        for key, value in result[section].items():
            print(f"{section:24s} {key:42s} {value:10.3f}")
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
