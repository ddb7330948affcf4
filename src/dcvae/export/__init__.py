"""Export a fitted detector's scoring function to ONNX, and score with onnxruntime alone.

- ``dcvae.export.exporter`` (needs torch, onnx, onnxscript): :func:`export_onnx` writes the graph
  of a fitted VAE detector's anomaly score, with what a deployment needs to know in its metadata.
- ``dcvae.export.runtime`` (needs only numpy and onnxruntime): :class:`OnnxDetector` opens such a
  file, checks inputs as the library does, scores them and flags anomalies at the stored
  thresholds.

This package's ``__init__`` imports neither, so ``import dcvae.export.runtime`` stays torch-free.
"""
