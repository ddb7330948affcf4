"""Suite-wide settings, and the fixtures the hostile-input suites share (tests/hostile.py)."""

import numpy as np
import pytest
import torch
from hostile import detectors, hostile_counts, scratch  # noqa: F401  (fixtures of the hostile suites)

# The suite's models are tiny: one thread is faster than two and immune to a loaded machine.
torch.set_num_threads(1)


@pytest.fixture
def ledoit_wolf_fits(monkeypatch):
    """A spy on scikit-learn's LedoitWolf.fit: the list of every array a Gaussian is fitted on."""
    from sklearn.covariance import LedoitWolf

    seen: list[np.ndarray] = []
    real = LedoitWolf.fit

    def spy(self, X, y=None):
        seen.append(np.asarray(X).copy())
        return real(self, X)

    monkeypatch.setattr(LedoitWolf, "fit", spy)
    return seen
