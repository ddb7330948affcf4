"""Training and scoring throughput of dcvae next to Pythae and PyOD, and the matmul ceiling.

    .venv/bin/pip install -r benchmarks/requirements-peers.txt
    .venv/bin/python benchmarks/throughput.py --out benchmarks/results/throughput.json

Same data (Fashion-MNIST train images), network (784-512-256-(latent 16)-256-512-784) and batch
size (128) for everyone. Each dcvae row's ceiling is the time of its own network's layer products
alone (``layer_ceiling``: every dense and convolution layer of one step, forward and backward, no
input gradient for the layer that reads the data), measured on the spot beside each training run;
the conv row also against its convolutions alone. The CPU time other processes use during each
measurement is recorded; a figure taken while they used more than ``--max-load`` cores is flagged.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcvae.data import load_dataset
from dcvae.models import build_model
from dcvae.scoring import anomaly_scores
from dcvae.training import TensorData, TrainConfig, Trainer

HIDDEN, LATENT, BATCH = (512, 256), 16, 128


# ----------------------------------------------------------------------------- load monitor
def _busy_jiffies() -> int:
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


@contextmanager
def measured(record: dict[str, Any], key: str):
    """Wall time of the block, plus the cores other processes kept busy meanwhile."""
    hz = os.sysconf("SC_CLK_TCK")
    busy0, own0, start = _busy_jiffies(), os.times(), time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    busy1, own1 = _busy_jiffies(), os.times()
    own = (own1.user + own1.system + own1.children_user + own1.children_system
           - own0.user - own0.system - own0.children_user - own0.children_system)
    others = max(0.0, (busy1 - busy0) / hz - own) / elapsed
    record[key] = elapsed
    record.setdefault("other_load_cores", []).append(round(others, 3))


def best_of(repeats: int, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run ``fn`` ``repeats`` times; keep the median time and the worst observed load."""
    runs = []
    for _ in range(repeats):
        rec: dict[str, Any] = {}
        fn(rec)
        runs.append(rec)
    out = {"seconds": statistics.median(r["seconds"] for r in runs),
           "other_load_cores": max(max(r["other_load_cores"]) for r in runs)}
    return out


# ----------------------------------------------------------------------------- ceiling
COMPUTE = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def layer_ceiling(net: Any, x: np.ndarray, y: np.ndarray, dtype: torch.dtype, device: str,
                  kinds: tuple[type, ...] = COMPUTE, steps: int = 30) -> tuple[float, float]:
    """Samples/s if a training step were nothing but its layers' products, in the order one step
    runs them: every dense and convolution layer that one forward of ``net`` on a batch runs, at
    that batch's shapes. A dense layer is its three matrix products alone, in ``nn.Linear``'s
    layout (forward, weight gradient, and input gradient except for the layer that reads the data);
    a convolution is its forward and backward kernels. No activation, loss, optimiser or Python."""
    seen: list[tuple[torch.nn.Module, torch.Tensor, bool, torch.Size]] = []

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.append((module, inputs[0].detach(), inputs[0].requires_grad, out.shape))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    net.train()
    xb = net.prepare(torch.as_tensor(x[:BATCH]).to(device))
    net(xb, torch.as_tensor(y[:BATCH], device=device) if net.conditional else None)
    for handle in handles:
        handle.remove()
    products: list[Callable[[], Any]] = []
    for module, inp, needs_grad, shape in seen:
        layer = copy.deepcopy(module).to(device=device, dtype=dtype)
        leaf, dy = inp.to(dtype).clone(), torch.randn(shape, dtype=dtype, device=device)
        if isinstance(layer, torch.nn.Linear):
            w, b = layer.weight.detach(), layer.bias.detach()
            products += [lambda w=w, b=b, a=leaf: torch.addmm(b, a, w.t()),
                         lambda dy=dy, a=leaf: dy.t().mm(a)]
            if needs_grad:
                products.append(lambda dy=dy, w=w: dy.mm(w))
        else:
            leaf.requires_grad_(needs_grad)
            wrt = [*layer.parameters(), *([leaf] if needs_grad else [])]
            products.append(lambda layer=layer, a=leaf, wrt=wrt, dy=dy:
                            torch.autograd.grad(layer(a), wrt, dy))

    def step() -> None:
        for product in products:
            product()

    step()  # warm-up
    rec: dict[str, Any] = {}
    with measured(rec, "seconds"):
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
    return BATCH * steps / rec["seconds"], rec["other_load_cores"][0]


# ----------------------------------------------------------------------------- dcvae
def build(model: str, backbone: str, device: str, n_conditions: int = 10) -> Any:
    torch.manual_seed(0)
    return build_model(model, input_shape=[1, 28, 28], backbone=backbone, hidden_dims=list(HIDDEN),
                       latent_dim=LATENT, condition_names=[str(i) for i in range(n_conditions)]).to(device)


def dcvae_train(net: Any, x: np.ndarray, y: np.ndarray, precision: str, device: str, epochs: int,
                rec: dict[str, Any]) -> Any:
    trainer = Trainer(net, TrainConfig(epochs=epochs, batch_size=BATCH, patience=0, device=device,
                                       precision=precision), progress=False)
    data = TensorData.from_numpy(x, y)
    with measured(rec, "seconds"):
        trainer.fit(data)
    return net


def dcvae_score(net: Any, x: np.ndarray, precision: str, rec: dict[str, Any],
                c: np.ndarray | None = None) -> None:
    with measured(rec, "seconds"):
        anomaly_scores(net, x, c, precision=precision, batch_size=1024)


# ----------------------------------------------------------------------------- peers
def pythae_train(x: np.ndarray, epochs: int, device: str, rec: dict[str, Any]) -> Any:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512),
                                           torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                           torch.nn.ReLU(), torch.nn.Linear(256, 2 * LATENT))

        def forward(self, x: torch.Tensor) -> ModelOutput:
            mu, logvar = self.net(x).chunk(2, dim=1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(LATENT, 256), torch.nn.ReLU(),
                                           torch.nn.Linear(256, 512), torch.nn.ReLU(),
                                           torch.nn.Linear(512, 784), torch.nn.Sigmoid())

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z).view(-1, 1, 28, 28))

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as out:
        trainer_config = BaseTrainerConfig(output_dir=out, num_epochs=epochs, learning_rate=1e-3,
                                           per_device_train_batch_size=BATCH, no_cuda=device != "cuda")
        images = torch.from_numpy(x).float() / 255.0
        trainer = BaseTrainer(model=model, train_dataset=BaseDataset(images, torch.zeros(len(x))),
                              training_config=trainer_config)
        with measured(rec, "seconds"):
            trainer.train()
    return model


def pythae_score(model: Any, x: np.ndarray, rec: dict[str, Any]) -> None:
    model.eval()
    with measured(rec, "seconds"), torch.no_grad():
        for start in range(0, len(x), 1024):
            batch = torch.from_numpy(x[start:start + 1024]).float() / 255.0
            recon = model.reconstruct(batch.to(next(model.parameters()).device))
            (batch - recon.cpu()).flatten(1).norm(dim=1)


def pyod_train(x: np.ndarray, epochs: int, device: str, rec: dict[str, Any]) -> Any:
    from pyod.models.vae import VAE

    flat = x.reshape(len(x), -1).astype(np.float32) / 255.0
    model = VAE(encoder_neuron_list=list(HIDDEN), decoder_neuron_list=list(reversed(HIDDEN)),
                latent_dim=LATENT, epoch_num=epochs, batch_size=BATCH, dropout_rate=0.0,
                preprocessing=False, verbose=0, device=device)
    with measured(rec, "seconds"):
        model.fit(flat)
    return model


def pyod_score(model: Any, x: np.ndarray, rec: dict[str, Any]) -> None:
    flat = x.reshape(len(x), -1).astype(np.float32) / 255.0
    with measured(rec, "seconds"):
        model.decision_function(flat)


# ----------------------------------------------------------------------------- memory
def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory of one `dcvae` command, via GNU time."""
    exe = str(Path(sys.executable).with_name("dcvae"))
    out = subprocess.run(["/usr/bin/time", "-f", "%M", exe, *args], capture_output=True, text=True,
                         check=True)
    return int(out.stderr.strip().splitlines()[-1]) / 1024


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-samples", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--bf16-samples", type=int, default=None,
                        help="fewer samples for the bf16 runs (emulated bf16 on CPUs without it is slow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-repeats", type=int, default=15,
                        help="scoring the 10k test images takes ~0.1 s: a median of 3 moved by 30%%")
    parser.add_argument("--max-load", type=float, default=0.2,
                        help="cores other processes may use before a figure is flagged")
    parser.add_argument("--skip", nargs="*", default=[], choices=["peers", "scale", "memory"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    dev = args.device
    if "peers" not in args.skip:  # fail now, not after the library's runs
        import importlib.util

        missing = [m for m in ("pythae", "pyod") if importlib.util.find_spec(m) is None]
        if missing:
            parser.error(f"the peers {missing} are not installed: pip install {' '.join(missing)}, "
                         "or pass --skip peers")
    fmnist = load_dataset("fmnist")
    x, y = fmnist.train.x[:args.train_samples], fmnist.train.y[:args.train_samples]
    x_test = fmnist.test.x
    n_train = len(x) * args.epochs
    results: dict[str, Any] = {}

    # warm-up (imports, kernels)
    dcvae_train(build("vae", "mlp", dev), x[:2000], y[:2000], "fp32", dev, 1, {})
    for model, backbone, precision in [("vae", "mlp", "fp32"), ("dcvae", "mlp", "fp32"),
                                       ("vae", "mlp", "bf16"), ("dcvae", "mlp", "bf16"),
                                       ("vae", "conv", "fp32")]:
        nets: list[Any] = []
        ceilings: dict[str, list[float]] = {"ceiling": [], "ceiling_convolutions_only": []}
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        n_run = len(x) if precision == "fp32" else (args.bf16_samples or len(x))

        def train(rec: dict[str, Any], m=model, b=backbone, p=precision, keep=nets, n=n_run,
                  dtype=dtype, ceilings=ceilings) -> None:
            net = build(m, b, dev)
            # the ceilings are timed beside each training run, on the same network
            ceilings["ceiling"].append(layer_ceiling(net, x, y, dtype, dev)[0])
            if b == "conv":
                ceilings["ceiling_convolutions_only"].append(layer_ceiling(
                    net, x, y, dtype, dev, kinds=(torch.nn.Conv2d, torch.nn.ConvTranspose2d))[0])
            keep[:] = [dcvae_train(net, x[:n], y[:n], p, dev, args.epochs, rec)]

        t = best_of(args.repeats, train)
        s = best_of(args.score_repeats, lambda rec, p=precision, keep=nets: dcvae_score(
            keep[0], x_test, p, rec, np.zeros(len(x_test), int)))
        name = f"dcvae {model} {backbone} {precision}"
        train_rate = n_run * args.epochs / t["seconds"]
        results[name] = {"train": train_rate, "score": len(x_test) / s["seconds"],
                         "other_load_cores": max(t["other_load_cores"], s["other_load_cores"])}
        for key, values in ceilings.items():
            if values:
                results[name][key] = statistics.median(values)
                results[name][f"train_over_{key}"] = train_rate / statistics.median(values)
        if model == "dcvae":
            m = best_of(args.score_repeats,
                        lambda rec, p=precision, keep=nets: dcvae_score(keep[0], x_test, p, rec))
            results[name]["score_marginal_10_conditions"] = len(x_test) / m["seconds"]
            if precision == "fp32":  # 62 conditions: EMNIST ByClass's count (timing only)
                wide = dcvae_train(build(model, backbone, dev, 62), x[:2000], y[:2000], precision, dev, 1, {})
                m = best_of(args.repeats, lambda rec, net=wide: dcvae_score(net, x_test, "fp32", rec))
                results[name]["score_marginal_62_conditions"] = len(x_test) / m["seconds"]
        print(name, {k: round(v) if isinstance(v, float) and v > 10 else v
                     for k, v in results[name].items()}, flush=True)

    if "peers" not in args.skip:
        for peer, fit, score in [("pythae VAE", pythae_train, pythae_score),
                                 ("pyod VAE", pyod_train, pyod_score)]:
            models: list[Any] = []

            def train(rec: dict[str, Any], fit=fit, keep=models) -> None:
                keep[:] = [fit(x, args.epochs, dev, rec)]

            t = best_of(args.repeats, train)
            s = best_of(args.score_repeats, lambda rec, score=score, keep=models: score(keep[0], x_test, rec))
            results[peer] = {"train": n_train / t["seconds"], "score": len(x_test) / s["seconds"],
                             "other_load_cores": max(t["other_load_cores"], s["other_load_cores"])}
            print(peer, {k: round(v) if isinstance(v, float) and v > 10 else v
                         for k, v in results[peer].items()}, flush=True)

    scale: dict[str, Any] = {}
    if "scale" not in args.skip:
        emnist = load_dataset("emnist-byclass")  # the only split here with 110k images
        pool = np.concatenate([emnist.train.x, emnist.test.x])
        labels = np.concatenate([emnist.train.y, emnist.test.y]) % 10
        for n in (10_000, 30_000, 60_000, 110_000):
            rec: dict[str, Any] = {}
            dcvae_train(build("vae", "mlp", dev), pool[:n], labels[:n], "fp32", dev, 1, rec)
            scale[f"samples={n}"] = {"epoch_seconds": rec["seconds"],
                                     "other_load_cores": rec["other_load_cores"][0]}
            print("scale", n, round(rec["seconds"], 2), flush=True)
        for batch in (64, 128, 256, 512):
            global BATCH
            saved, BATCH = BATCH, batch
            rec = {}
            dcvae_train(build("vae", "mlp", dev), pool[:30_000], labels[:30_000], "fp32", dev, 1, rec)
            BATCH = saved
            scale[f"batch={batch}"] = {"epoch_seconds_30k": rec["seconds"],
                                       "other_load_cores": rec["other_load_cores"][0]}
            print("batch", batch, round(rec["seconds"], 2), flush=True)

    memory: dict[str, float] = {}
    if "memory" not in args.skip:
        with tempfile.TemporaryDirectory() as out:
            for dataset in ("mnist", "emnist-byclass"):
                memory[f"dcvae fit {dataset} (leave-one-out, 1 epoch), MB"] = peak_rss_mb(
                    ["fit", "--dataset", dataset, "--protocol", "leave-one-out", "--class", "0",
                     "--epochs", "1", "--quiet", "--model", "dcvae", "--out", f"{out}/{dataset}"])
        print("memory", memory, flush=True)

    print_table(results, args.max_load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                    f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}",
        "setting": {"network": "784-512-256-(16)-256-512-784", "batch": BATCH,
                    "train_samples": len(x), "epochs": args.epochs, "dataset": "fmnist"},
        "samples_per_second": results, "scale": scale, "peak_memory": memory,
    }, indent=1))
    print(f"wrote {args.out}")


def print_table(results: dict[str, Any], max_load: float) -> None:
    """Each row against its own network's layer ceiling (the peers against the fp32 MLP's)."""
    mlp_ceiling = results.get("dcvae vae mlp fp32", {}).get("ceiling")
    pythae = results.get("pythae VAE", {})
    pyod = results.get("pyod VAE", {})
    print(f"\n{'':34s} {'train/s':>9s} {'score/s':>9s} {'ceiling/s':>9s} {'train/ceil':>10s} "
          f"{'train/pythae':>12s} {'score/pythae':>12s} {'train/pyod':>10s}")
    for name, r in results.items():
        flag = "  (LOADED: not reported)" if r["other_load_cores"] > max_load else ""
        score = r.get("score")
        ceiling = r.get("ceiling", mlp_ceiling)

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.2f}" if a and b else "-"

        print(f"{name:34s} {r['train']:9.0f} {score or 0:9.0f} {ceiling or 0:9.0f} "
              f"{ratio(r['train'], ceiling):>10s} "
              f"{ratio(r['train'], pythae.get('train')):>12s} {ratio(score, pythae.get('score')):>12s} "
              f"{ratio(r['train'], pyod.get('train')):>10s}{flag}")
        if "ceiling_convolutions_only" in r:
            alone = r["ceiling_convolutions_only"]
            print(f"{'  against its convolutions alone':34s} {'':9s} {'':9s} "
                  f"{alone:9.0f} {ratio(r['train'], alone):>10s}")


if __name__ == "__main__":
    main()
