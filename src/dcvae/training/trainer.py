"""One trainer for every model: it sums nothing, knows no equation, and only steps, logs and stops.

A model returns its loss and named terms (``ModelOutput``); models with a discriminator expose a
secondary step (``secondary_loss``) that the trainer runs with its own optimiser after the
primary step.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections import defaultdict
from typing import Any

import torch
from tqdm.auto import tqdm

from dcvae.models.base import VAE
from dcvae.training.allocator import keep_freed_memory
from dcvae.training.checkpoint import (
    CheckpointError,
    TrainingState,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from dcvae.training.config import TrainConfig
from dcvae.training.data import TensorData
from dcvae.training.device import resolve_device
from dcvae.training.history import History
from dcvae.training.precision import autocast, bf16_is_slow_here


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; names the epoch and step where it happened."""

    def __init__(self, epoch: int, step: int | str, terms: dict[str, float]) -> None:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        super().__init__(
            f"training diverged at epoch {epoch}, "
            + (f"step {step}" if isinstance(step, int) else "in validation")
            + f": a loss term is not finite ({shown}). "
            "Lower the learning rate, check the inputs for extreme values, or use a smaller beta/gamma."
        )
        self.epoch, self.step, self.terms = epoch, step, terms



def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one op for all parameters; same update rule, less overhead)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


#: Adam's moments of a weight whose gradient is nearly always zero, such as a first-layer weight
#: of a pixel inked in a few images only, decay geometrically into the subnormal floats between two
#: gradients, and each operation on a subnormal takes a slow microcode path on x86 CPUs: on MNIST
#: an epoch took 3.6-4.0 s instead of 2.6-3.1 s from the third on, with up to 218,150 subnormal
#: first moments (benchmarks/subnormal_moments.py). Moments below these floors move a weight by
#: less than lr·1e-22 per step (a second moment's square root is then below float32's resolution
#: of eps), so they are zeroed every ``_DROP_EVERY`` steps, before they reach the subnormals: a
#: first moment takes about 170 steps from 1e-30 to 1.2e-38, a second about 4,400 from 1e-36.
#: (``torch.set_flush_denormal`` is no fix: it sets only the calling thread, not the OpenMP
#: workers that already exist, and it changes float arithmetic for the whole process.)
_TINY_MOMENTS = {"exp_avg": 1e-30, "exp_avg_sq": 1e-36}
_DROP_EVERY = 100


@torch.no_grad()
def _drop_tiny_moments(optimizer: torch.optim.Optimizer) -> None:
    for state in optimizer.state.values():
        for key, floor in _TINY_MOMENTS.items():
            moment = state.get(key)
            if moment is not None:
                moment.masked_fill_(moment.abs() < floor, 0.0)


class Trainer:
    """Adam on the primary parameters, a second Adam on the model's secondary parameters."""

    def __init__(self, model: VAE, config: TrainConfig | None = None, *, progress: bool = True):
        self.model = model
        self.config = config or TrainConfig()
        self.progress = progress
        self.device = resolve_device(self.config.device)
        keep_freed_memory()
        model.to(self.device)
        secondary = model.secondary_parameters()
        secondary_ids = {id(p) for p in secondary}
        primary = [p for p in model.parameters() if id(p) not in secondary_ids]
        self.optimizer = _adam(primary, self.config.lr)
        self.secondary_optimizer = _adam(secondary, self.config.secondary_lr) if secondary else None
        if self.config.precision == "bf16" and bf16_is_slow_here(self.device):
            warnings.warn("precision='bf16' on a CPU without native bfloat16 support "
                          "(no AVX512-BF16/AMX) is much slower than fp32 here", stacklevel=2)

    def fit(self, train: TensorData, validation: TensorData | None = None, *,
            checkpoint: str | os.PathLike[str] | None = None, checkpoint_every: int = 1,
            resume: bool = False) -> History:
        """Train for ``epochs`` (or until early stopping) and return the history.

        Deterministic: the same seed, data and config give the same weights on CPU.
        ``checkpoint``: a file written atomically every ``checkpoint_every`` epochs (and at the
        end); ``resume=True`` continues from it and ends with bit-identical weights to an
        uninterrupted run. A checkpoint of another model, config or data is refused.
        """
        if len(train) == 0:
            raise ValueError("the training set is empty")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 epoch, got {checkpoint_every}")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs the checkpoint path to resume from")
        cfg = self.config
        has_validation = validation is not None and len(validation) > 0
        run = self._describe_run(train, validation) if checkpoint is not None else {}
        shuffler = torch.Generator().manual_seed(cfg.seed)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        # a bar redrawn in place on a terminal; in a log (a file, CI) one line per epoch instead,
        # not a line per update
        lines = self.progress and not _is_terminal(sys.stderr)
        with torch.random.fork_rng(devices=[]), tqdm(
            total=cfg.epochs * steps_per_epoch, disable=not self.progress or lines, unit="step",
            dynamic_ncols=True, leave=False,
        ) as bar:
            torch.manual_seed(cfg.seed)
            state = self._fresh_state(run)
            if resume:
                state = self._restore(checkpoint, run, shuffler)  # type: ignore[arg-type]
                bar.update(state.epoch * steps_per_epoch)
            while state.epoch < cfg.epochs and not state.history.stopped_early:
                epoch = state.epoch + 1
                start = time.perf_counter()
                order = torch.randperm(len(train), generator=shuffler)
                train_terms = self._train_epoch(train, order, epoch, bar)
                record: dict[str, Any] = {"epoch": epoch, "train": train_terms}
                if has_validation:
                    record["validation"] = self.evaluate(validation)  # type: ignore[arg-type]
                    if not all(math.isfinite(v) for v in record["validation"].values()):
                        raise TrainingDivergedError(epoch, "validation", record["validation"])
                record["seconds"] = time.perf_counter() - start
                if lines:
                    _epoch_line(record, cfg.epochs)
                state.history.epochs.append(record)
                state.epoch = epoch
                monitored = record.get("validation", train_terms)["loss"]
                if monitored < state.best_loss:
                    state.best_loss, state.waited, state.history.best_epoch = monitored, 0, epoch
                    if has_validation:
                        state.best_model = copy.deepcopy(self.model.state_dict())
                else:
                    state.waited += 1
                    if cfg.patience and has_validation and state.waited >= cfg.patience:
                        state.history.stopped_early = True
                finished = epoch == cfg.epochs or state.history.stopped_early
                if checkpoint is not None and (epoch % checkpoint_every == 0 or finished):
                    self._save(checkpoint, state, shuffler)
        if state.best_model is not None:
            self.model.load_state_dict(state.best_model)
        self.model.eval()
        return state.history

    # ------------------------------------------------------------------------ checkpoints
    def _describe_run(self, train: TensorData, validation: TensorData | None) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: model, configs and data."""
        model = self.model
        return {
            "model": model.name, "config": model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "data": fingerprint(train.x, train.c,
                                None if validation is None else validation.x,
                                None if validation is None else validation.c),
        }

    def _fresh_state(self, run: dict[str, Any]) -> TrainingState:
        return TrainingState(epoch=0, history=History(), best_loss=math.inf, waited=0,
                             model={}, best_model=None, optimizers={}, rng={}, run=run)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out: dict[str, torch.optim.Optimizer] = {"primary": self.optimizer}
        if self.secondary_optimizer is not None:
            out["secondary"] = self.secondary_optimizer
        return out

    def _save(self, path: str | os.PathLike[str], state: TrainingState,
              shuffler: torch.Generator) -> None:
        state.model = self.model.state_dict()
        state.optimizers = {k: opt.state_dict() for k, opt in self._optimizers().items()}
        state.rng = {"torch": torch.get_rng_state(), "shuffler": shuffler.get_state()}
        save_checkpoint(path, state)

    def _restore(self, path: str | os.PathLike[str], run: dict[str, Any],
                 shuffler: torch.Generator) -> TrainingState:
        state = load_checkpoint(path)
        for key in ("model", "config", "train_config", "data"):
            if state.run.get(key) != run[key]:
                what = "training data" if key == "data" else key
                raise CheckpointError(
                    f"{path} was written for a different run: its {what} differs from this one's; "
                    "resume with the same model, settings and data, or start afresh"
                )
        try:
            self.model.load_state_dict(state.model)
            current = self.model.state_dict()  # the best weights are loaded only after the last epoch
            if state.best_model is not None and (state.best_model.keys() != current.keys() or any(
                    value.shape != current[key].shape for key, value in state.best_model.items())):
                raise ValueError("its best weights do not match the model's tensors")
            for name, optimizer in self._optimizers().items():
                optimizer.load_state_dict(state.optimizers[name])
                _check_optimizer_state(name, optimizer)
            torch.set_rng_state(state.rng["torch"])
            shuffler.set_state(state.rng["shuffler"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as err:
            # the last three: torch reading a malformed optimiser state (e.g. param_groups null)
            raise CheckpointError(f"{path} does not fit this model: {err!r}") from None
        return state

    def _train_epoch(self, data: TensorData, order: torch.Tensor, epoch: int,
                     bar: tqdm) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        # steps counted over the whole fit (so also in epochs shorter than _DROP_EVERY steps),
        # the same whether the fit was resumed or not
        before = (epoch - 1) * math.ceil(len(data) / self.config.batch_size)
        for step, (x, c) in enumerate(data.batches(self.config.batch_size, order), start=1):
            x = self.model.prepare(x)
            c = None if c is None else c.to(self.device)
            with autocast(self.device, self.config.precision):
                output = self.model(x, c)
            self.optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            terms = {k: float(v.detach()) for k, v in output.terms.items()}
            if not math.isfinite(terms["loss"]):
                raise TrainingDivergedError(epoch, step, terms)
            self.optimizer.step()
            if (before + step) % _DROP_EVERY == 0:
                for optimizer in self._optimizers().values():
                    _drop_tiny_moments(optimizer)
            if self.secondary_optimizer is not None:
                secondary = self.model.secondary_loss(output)
                if secondary is not None:
                    loss2, terms2 = secondary
                    self.secondary_optimizer.zero_grad(set_to_none=True)
                    loss2.backward()
                    self.secondary_optimizer.step()
                    terms.update({k: float(v.detach()) for k, v in terms2.items()})
                    if not math.isfinite(terms[next(iter(terms2))]):
                        raise TrainingDivergedError(epoch, step, terms)
            n = x.shape[0]
            for k, v in terms.items():
                sums[k] += v * n
            count += n
            bar.update(1)
            bar.set_description(f"epoch {epoch}/{self.config.epochs}")
            bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items()}, refresh=False)
        return {k: v / count for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self, data: TensorData) -> dict[str, float]:
        """Mean loss terms on ``data`` in eval mode, with fixed noise so epochs compare fairly."""
        self.model.eval()
        sums: dict[str, float] = defaultdict(float)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            for x, c in data.batches(max(self.config.batch_size, 512)):
                with autocast(self.device, self.config.precision):
                    output = self.model(self.model.prepare(x),
                                        None if c is None else c.to(self.device))
                for k, v in output.terms.items():
                    sums[k] += float(v) * x.shape[0]
        self.model.train()
        return {k: v / len(data) for k, v in sums.items()}


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _epoch_line(record: dict[str, Any], epochs: int) -> None:
    validation = record.get("validation")
    held_out = f", validation loss {validation['loss']:.4g}" if validation else ""
    print(f"epoch {record['epoch']}/{epochs}: loss {record['train']['loss']:.4g}{held_out} "
          f"({record['seconds']:.1f} s)", file=sys.stderr, flush=True)


def _check_optimizer_state(name: str, optimizer: torch.optim.Optimizer) -> None:
    """A loaded optimiser state whose tensors fit their parameters (each one a scalar, like Adam's
    step, or of its parameter's shape); ValueError otherwise. torch does not check, and fails
    later, deep in the update (a damaged checkpoint found it). ``load_checkpoint`` has already
    refused non-finite tensors."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor):
                    continue
                if value.numel() != 1 and value.shape != param.shape:
                    raise ValueError(f"its {name} optimiser's {key!r} has shape {tuple(value.shape)} "
                                     f"for a parameter of shape {tuple(param.shape)}")
