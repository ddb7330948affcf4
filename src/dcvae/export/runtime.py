"""Score with an exported detector using onnxruntime and NumPy alone (no torch, no scikit-learn).

>>> det = OnnxDetector("model.onnx")                          # doctest: +SKIP
>>> det.decision_function(x), det.predict(x)                  # doctest: +SKIP

The file must be one ``dcvae export --format onnx`` wrote: its metadata is checked on opening
(format marker, opset, input shape), and inputs are checked by the rules of
``dcvae.data.canonical`` (repeated here, so this module imports nothing of the library that needs
torch): uint8 kept (pixel intensities, / 255), floats in [0, 1] for images and for feature vectors
of a model fitted on pixels, other integers in 0-255 for those, and finite values throughout.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from dcvae.export.format import FORMAT, FORMAT_KEY, FORMAT_VERSION, INPUT_NAME, MIN_OPSET, OUTPUTS

_CHANNELS = (1, 3)
#: rows per run of the graph when its file does not say (``dcvae.rows_per_run``)
CHUNK = 512


class OnnxDetector:
    """An exported dcvae detector: ``decision_function`` (higher = more anomalous) and ``predict``
    (1 = anomaly) with the thresholds calibrated at fit time. Conditional models score in given mode
    with ``c`` (one training condition name per sample), in marginal mode without."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = os.fspath(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(self.path, sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{self.path} is not a readable ONNX model: {first}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = meta
        self._check_metadata(meta)

    def _check_metadata(self, meta: dict[str, str]) -> None:
        where = self.path
        if meta.get(FORMAT_KEY) != FORMAT:
            raise ValueError(f"{where} is not a dcvae export: its metadata has no {FORMAT_KEY}={FORMAT!r} "
                             "(write one with `dcvae export MODEL_DIR --format onnx`)")
        if meta.get("dcvae.format_version") != FORMAT_VERSION:
            raise ValueError(f"{where} is a dcvae export of layout {meta.get('dcvae.format_version')!r}; "
                             f"this runtime reads layout {FORMAT_VERSION!r}: export it again")
        try:
            shape = tuple(int(s) for s in json.loads(meta["dcvae.input_shape"]))
            self.condition_names: tuple[str, ...] = tuple(str(n) for n in
                                                          json.loads(meta["dcvae.condition_names"]))
            self.conditional = bool(json.loads(meta["dcvae.conditional"]))
            pixels = json.loads(meta["dcvae.input_pixels"])
            self.input_: dict[str, Any] = dict(json.loads(meta["dcvae.input"]))
            self.thresholds_ = {"given": float(meta["dcvae.threshold.given"]),
                               "marginal": float(meta["dcvae.threshold.marginal"])}
            opset = int(meta["dcvae.opset"])
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{where}: damaged dcvae metadata ({type(err).__name__}: {err})") from None
        if len(shape) not in (1, 3) or any(s < 1 for s in shape):
            raise ValueError(f"{where}: the stored input shape {shape} is not (C, H, W) or (d,)")
        if opset < MIN_OPSET:
            raise ValueError(f"{where} uses ONNX opset {opset}; this runtime needs opset >= {MIN_OPSET}")
        if not all(math.isfinite(t) for t in self.thresholds_.values()):
            raise ValueError(f"{where}: the stored thresholds {self.thresholds_} are not finite")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != list(OUTPUTS):
            raise ValueError(f"{where}: the graph takes {[i.name for i in inputs]} and gives "
                             f"{[o.name for o in outputs]}, not [{INPUT_NAME!r}] and {list(OUTPUTS)}")
        graph_shape = tuple(inputs[0].shape[1:])
        if graph_shape != shape:
            raise ValueError(f"{where}: the graph's input shape {graph_shape} does not match the stored "
                             f"input shape {shape}")
        self.input_shape = shape
        self.pixels: bool | None = None if pixels is None else bool(pixels)
        self.likelihood = meta.get("dcvae.likelihood", "")
        self.model_name = meta.get("dcvae.model", "")
        self.score_name = meta.get("dcvae.score", "")
        self.threshold_ = self.thresholds_["marginal"]
        rows = meta.get("dcvae.rows_per_run", "")
        self.rows_per_run = int(rows) if rows.isdigit() and int(rows) > 0 else CHUNK

    # ------------------------------------------------------------------------------ scoring
    def decision_function(self, X: Any, c: Any = None) -> np.ndarray:
        """Anomaly scores (float64, higher = more anomalous): given mode with ``c``, else marginal."""
        x = self.check_inputs(X)
        # in chunks: a graph's intermediate arrays (latent-knn's distances to every training code)
        # grow with its batch
        step = self.rows_per_run
        runs = [self.session.run(list(OUTPUTS), {INPUT_NAME: _graph_input(x[i:i + step])})
                for i in range(0, len(x), step)]  # check_inputs refused an empty X
        marginal = np.concatenate([r[0] for r in runs])
        per_condition = np.concatenate([r[1] for r in runs])
        if c is None:
            return np.asarray(marginal, dtype=np.float64)
        columns = self._condition_columns(c, len(x))
        return np.asarray(per_condition[np.arange(len(x)), columns], dtype=np.float64)

    def predict(self, X: Any, c: Any = None) -> np.ndarray:
        """1 = anomaly (score above the stored threshold of the mode), 0 = normal."""
        scores = self.decision_function(X, c)
        return (scores > self.thresholds_["marginal" if c is None else "given"]).astype(np.int64)

    def _condition_columns(self, c: Any, n: int) -> np.ndarray:
        labels = np.asarray(c, dtype=object if isinstance(c, list | tuple) else None)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"c must be 1-D with one condition per sample ({n}), got shape {labels.shape}")
        if not self.conditional:  # the model ignores conditions (as the detector does)
            return np.zeros(n, dtype=np.int64)
        names = self.condition_names or ("0",)
        lookup = {v: i for i, v in enumerate(names)}
        texts = [_condition_name(v) for v in labels.tolist()]
        unknown = sorted(set(texts) - set(lookup))
        if unknown:
            raise ValueError(f"c holds condition(s) never seen in training: {unknown[:10]}; the model knows "
                             f"{list(names)[:20]}. Leave the conditions out to score in marginal mode")
        return np.fromiter((lookup[t] for t in texts), dtype=np.int64, count=n)

    def check_inputs(self, X: Any, *, name: str = "X") -> np.ndarray:
        """Canonical inputs as the library reads them (``canonical_inputs``), of the model's shape."""
        arr = np.asarray(X)
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name} holds a value that is not a number: {err}") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric (uint8 images or floats), got dtype {arr.dtype}")
        image = len(self.input_shape) == 3
        if image and arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim < 2 or arr.shape[1:] != self.input_shape:
            raise ValueError(f"{name} has shape {arr.shape}; the model takes (n, "
                             f"{', '.join(map(str, self.input_shape))})")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty: it has 0 samples")
        if not image and self.pixels is False:  # values: every number is a float32 value
            x = arr.astype(np.float32) if arr.dtype.kind in "biu" else _finite_float32(arr, name)
        elif arr.dtype == np.uint8:
            x = arr
        elif arr.dtype == np.bool_:
            x = arr.astype(np.uint8) * np.uint8(255) if image or self.pixels else arr.astype(np.float32)
        elif arr.dtype.kind in "iu" and (image or self.pixels):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 255:
                raise ValueError(f"{name}: integer {'images' if image else 'pixels'} must lie in 0-255, "
                                 f"found {lo}..{hi}")
            x = arr.astype(np.uint8)
        elif arr.dtype.kind in "iu":
            x = arr.astype(np.float32)
        else:
            x = _finite_float32(arr, name)
            if image or self.pixels:
                lo_f, hi_f = float(x.min()), float(x.max())
                if lo_f < 0.0 or hi_f > 1.0:
                    raise ValueError(f"{name}: float {'images' if image else 'pixel features'} must lie in "
                                     f"[0, 1], found {lo_f:.4g}..{hi_f:.4g}; divide 0-255 values by 255 or "
                                     "pass them as uint8")
        if self.likelihood == "bernoulli" and x.dtype != np.uint8 and (float(x.min()) < 0.0
                                                                      or float(x.max()) > 1.0):
            raise ValueError(f"{name} has values outside [0, 1], which a Bernoulli likelihood cannot model")
        return x


def _graph_input(x: np.ndarray) -> np.ndarray:
    """uint8 intensities / 255 (as ``VAE.prepare`` does), float32 throughout."""
    return (x.astype(np.float32) / np.float32(255.0)) if x.dtype == np.uint8 else x.astype(np.float32)


def _finite_float32(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has values too large for float32 (|x| > 3.4e38)")
    return out


def _condition_name(value: Any) -> str:
    """As ``dcvae.data.conditions.condition_name``: ``2.0`` → ``"2"``."""
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(float(value)) < 2.0**53:
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)
