"""What an exported file says about itself: the metadata keys both sides agree on (no imports
beyond the standard library, so the runtime can read them without torch)."""

from __future__ import annotations

#: The value of ``FORMAT_KEY`` in every file this library exports, and the layout's version.
FORMAT = "dcvae.onnx"
FORMAT_KEY = "dcvae.format"
FORMAT_VERSION = "1"
#: The ONNX operator set the exporter targets, and the least one the runtime accepts.
OPSET = 18
MIN_OPSET = 17
INPUT_NAME = "x"
OUTPUTS = ("marginal", "per_condition")

KEYS = ("dcvae.format", "dcvae.format_version", "dcvae.version", "dcvae.model", "dcvae.score",
        "dcvae.input_shape", "dcvae.input_pixels", "dcvae.likelihood", "dcvae.input",
        "dcvae.condition_names", "dcvae.conditional", "dcvae.threshold.given",
        "dcvae.threshold.marginal", "dcvae.opset")
