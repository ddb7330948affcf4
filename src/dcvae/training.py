"""One trainer for every model: it sums nothing, knows no equation, and only steps, logs and stops.

A model returns its loss and named terms (``ModelOutput``); models with a discriminator expose a
secondary step (``secondary_loss``) that the trainer runs with its own optimiser after the
primary step.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dcvae.config import ConfigError, StrictConfig
from dcvae.models.base import VAE


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


@dataclass(frozen=True)
class TrainConfig(StrictConfig):
    """How to train.

    lr: primary learning rate (encoder, decoder, priors); secondary_lr: the discriminator's.
    patience: epochs without a better validation loss before stopping (0 = never stop early);
    the weights of the best validation epoch are restored at the end.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    secondary_lr: float = 1e-4
    seed: int = 0
    patience: int = 5
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not all(0 < lr < math.inf for lr in (self.lr, self.secondary_lr)):
            raise ConfigError(
                f"learning rates must be finite and > 0, got {self.lr}, {self.secondary_lr}"
            )
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")


@dataclass
class TensorData:
    """Inputs (uint8 images or float features, kept as given) and optional condition indices."""

    x: torch.Tensor
    c: torch.Tensor | None = None

    @classmethod
    def from_numpy(cls, x: np.ndarray, c: np.ndarray | None = None) -> TensorData:
        x_t = torch.from_numpy(np.ascontiguousarray(x))
        c_t = None if c is None else torch.from_numpy(np.asarray(c, dtype=np.int64))
        return cls(x_t, c_t)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batches(self, batch_size: int, order: torch.Tensor | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Slices (or gathers, when an order is given) of x and c; no per-sample Python work."""
        n = len(self)
        for start in range(0, n, batch_size):
            if order is None:
                idx: slice | torch.Tensor = slice(start, start + batch_size)
            else:
                idx = order[start:start + batch_size]
            yield self.x[idx], None if self.c is None else self.c[idx]


@dataclass
class History:
    """Per-epoch means of every loss term, for training and validation data."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The inverse of ``to_dict``; a ValueError naming the field when ``data`` is malformed."""
        unknown = sorted(set(data) - {"epochs", "best_epoch", "stopped_early"})
        if unknown:
            raise ValueError(f"history: unknown key(s) {unknown}")
        epochs, best = data.get("epochs", []), data.get("best_epoch")
        stopped = data.get("stopped_early", False)
        if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
            raise ValueError(f"history.epochs: expected a list of objects, got {epochs!r:.80}")
        if best is not None and (isinstance(best, bool) or not isinstance(best, int)):
            raise ValueError(f"history.best_epoch: expected an integer or null, got {best!r}")
        if not isinstance(stopped, bool):
            raise ValueError(f"history.stopped_early: expected true or false, got {stopped!r}")
        return cls(epochs, best, stopped)


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one op for all parameters; same update rule, less overhead)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


class Trainer:
    """Adam on the primary parameters, a second Adam on the model's secondary parameters."""

    def __init__(self, model: VAE, config: TrainConfig | None = None, *, progress: bool = True):
        self.model = model
        self.config = config or TrainConfig()
        self.progress = progress
        self.device = torch.device(self.config.device)
        model.to(self.device)
        secondary = model.secondary_parameters()
        secondary_ids = {id(p) for p in secondary}
        primary = [p for p in model.parameters() if id(p) not in secondary_ids]
        self.optimizer = _adam(primary, self.config.lr)
        self.secondary_optimizer = _adam(secondary, self.config.secondary_lr) if secondary else None

    def fit(self, train: TensorData, validation: TensorData | None = None) -> History:
        """Train for ``epochs`` (or until early stopping) and return the history.

        Deterministic: the same seed, data and config give the same weights on CPU.
        """
        if len(train) == 0:
            raise ValueError("the training set is empty")
        cfg = self.config
        history = History()
        best_loss, best_state, waited = math.inf, None, 0
        shuffler = torch.Generator().manual_seed(cfg.seed)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        with torch.random.fork_rng(devices=[]), tqdm(
            total=cfg.epochs * steps_per_epoch, disable=not self.progress, unit="step",
            dynamic_ncols=True, leave=False,
        ) as bar:
            torch.manual_seed(cfg.seed)
            for epoch in range(1, cfg.epochs + 1):
                start = time.perf_counter()
                order = torch.randperm(len(train), generator=shuffler)
                train_terms = self._train_epoch(train, order, epoch, bar)
                record: dict[str, Any] = {"epoch": epoch, "train": train_terms}
                if validation is not None and len(validation) > 0:
                    record["validation"] = self.evaluate(validation)
                    if not all(math.isfinite(v) for v in record["validation"].values()):
                        raise TrainingDivergedError(epoch, "validation", record["validation"])
                record["seconds"] = time.perf_counter() - start
                history.epochs.append(record)
                monitored = record.get("validation", train_terms)["loss"]
                if monitored < best_loss:
                    best_loss, waited, history.best_epoch = monitored, 0, epoch
                    if validation is not None:
                        best_state = copy.deepcopy(self.model.state_dict())
                else:
                    waited += 1
                    if cfg.patience and validation is not None and waited >= cfg.patience:
                        history.stopped_early = True
                        break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return history

    def _train_epoch(self, data: TensorData, order: torch.Tensor, epoch: int,
                     bar: tqdm) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for step, (x, c) in enumerate(data.batches(self.config.batch_size, order), start=1):
            x = self.model.prepare(x)
            c = None if c is None else c.to(self.device)
            output = self.model(x, c)
            self.optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            terms = {k: float(v.detach()) for k, v in output.terms.items()}
            if not math.isfinite(terms["loss"]):
                raise TrainingDivergedError(epoch, step, terms)
            self.optimizer.step()
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
                output = self.model(self.model.prepare(x), None if c is None else c.to(self.device))
                for k, v in output.terms.items():
                    sums[k] += float(v) * x.shape[0]
        self.model.train()
        return {k: v / len(data) for k, v in sums.items()}
