"""Suite-wide settings."""

import torch

# The suite's models are tiny: one thread is faster than two and immune to a loaded machine.
torch.set_num_threads(1)
