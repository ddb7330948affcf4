"""Suite-wide settings, and the fixtures the hostile-input suites share (tests/hostile.py)."""

import torch
from hostile import detectors, hostile_counts, scratch  # noqa: F401  (fixtures of the hostile suites)

# The suite's models are tiny: one thread is faster than two and immune to a loaded machine.
torch.set_num_threads(1)
