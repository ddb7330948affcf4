"""The per-epoch record of a training run, kept with the model and in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    def kl_per_dimension(self, latent_dim: int) -> float | None:
        """The KL term per latent dimension, in nats, of the epoch whose weights were kept (the best
        one, else the last), on the validation data where there is any; None without a KL term."""
        if not self.epochs:
            return None
        kept = next((e for e in self.epochs if e.get("epoch") == self.best_epoch), self.epochs[-1])
        terms = kept.get("validation") or kept.get("train") or {}
        kl = terms.get("kl")
        return None if not isinstance(kl, int | float) else float(kl) / latent_dim


#: Below this KL per latent dimension (nats) at the end of training, the latent carries almost no
#: information about the input (posterior collapse): healthy MNIST models of the committed
#: benchmark sit at 0.2-1.2, the collapsed runs a user reported at 0.01-0.09.
COLLAPSE_KL_PER_DIMENSION = 0.1


class PosteriorCollapseWarning(UserWarning):
    """The trained model's posterior barely leaves its prior: the latent is hardly used."""
