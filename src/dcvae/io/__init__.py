"""Files: atomic writes, and the saved model directory (``config.json`` + its safetensors files).

``dcvae.io.atomic`` has no dependency inside the library, so every layer may use it; the model
directory (``dcvae.io.model_dir``) sits above the models and the trainer.
"""

from dcvae.io.atomic import atomic_file, atomic_write, atomic_write_text

__all__ = ["atomic_file", "atomic_write", "atomic_write_text"]
