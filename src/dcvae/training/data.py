"""Training and scoring data as tensors: inputs kept as given (uint8 images stay uint8)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


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

