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
