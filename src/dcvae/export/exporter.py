"""A fitted VAE detector's scoring function as an ONNX graph (``dcvae export --format onnx``).

:class:`ScoringGraph` is a torch module that computes, from one batch, what
``AnomalyDetector.decision_function`` computes: every sample is encoded under each of the K
training conditions (``encode_each``, as ``dcvae.scoring.scores._posteriors`` does in marginal
mode), each base score of the detector's score comes from the library's own score functions
(``SCORES``), and the detector's fitted score (``FittedScore``: a base score, its typicality, or a
sum of standardised terms) combines them in float64, as NumPy does in the library. Outputs:

- ``marginal`` (B,): the detector's score in marginal mode, each base score its own minimum over
  the conditions before the combination (the library's rule);
- ``per_condition`` (B, K): the given-mode score under each condition (K = 1 for unconditional
  models), so the given-mode score of sample i is ``per_condition[i, c_i]``.

The graph's input ``x`` is float32 in data units, shape (B, *input_shape): images in [0, 1],
feature vectors as they are. uint8 pixel intensities are divided by 255 before the graph (the
runtime does it; ``ScoringGraph.forward`` takes either), exactly as ``VAE.prepare`` does.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvae import __version__
from dcvae.export.format import FORMAT, FORMAT_KEY, FORMAT_VERSION, INPUT_NAME, OPSET, OUTPUTS
from dcvae.export.runtime import CHUNK
from dcvae.io.atomic import atomic_write
from dcvae.models.base import VAE
from dcvae.scoring.family import CORRECTED, FittedScore, parse_score
from dcvae.scoring.scores import GIVEN, MARGINAL, SCORES, Posterior

if TYPE_CHECKING:
    from dcvae.detector import AnomalyDetector

#: The base scores the graph computes: the model's own (no PNG compression inside a graph);
#: ``latent-knn`` carries the training codes into the graph as constants.
EXPORTABLE = tuple(sorted(SCORES))


def check_exportable(detector: AnomalyDetector) -> VAE:
    """The detector's VAE, or one ValueError saying why it cannot be exported."""
    if "model_" not in detector.__dict__:
        raise ValueError("this AnomalyDetector is not fitted yet: fit or load it before exporting")
    model = detector.model_
    if not isinstance(model, VAE):
        raise ValueError(f"{model.name} is a classical detector: only the VAE detectors export to ONNX "
                         f"(their score is one graph of the network); score {model.name} with dcvae")
    recipe = parse_score(detector.anomaly_score_)
    corrected = [b for b in recipe.bases if b in CORRECTED]
    if corrected:
        raise ValueError(f"score {recipe.name!r} needs {corrected}, whose input complexity is a PNG "
                         f"compression, not a graph operation: it does not export to ONNX; choose a score "
                         f"of {list(EXPORTABLE)} (or their typical-/+ combinations)")
    unknown = [b for b in recipe.bases if b not in EXPORTABLE]
    if unknown:
        raise ValueError(f"score {recipe.name!r} needs {unknown}, which the ONNX export does not compute; "
                         f"it exports {list(EXPORTABLE)}")
    if "latent" in recipe.bases and getattr(model, "latent_gaussians", None) is None:
        raise ValueError("the latent score needs the Gaussians of the training codes, which this model "
                         "does not have")
    if "latent-knn" in recipe.bases and getattr(model, "latent_codes", None) is None:
        raise ValueError("the latent-knn score needs the codes of the training data, which this model "
                         "does not have")
    if detector.precision != "fp32":
        raise ValueError(f"the detector scores in {detector.precision}; the ONNX graph computes in float32: "
                         "set detector.precision = 'fp32' to export (its scores then change slightly)")
    return model


class ScoringGraph(nn.Module):
    """The detector's score of a raw batch: ``(marginal (B,), per_condition (B, K))``, float64."""

    def __init__(self, detector: AnomalyDetector) -> None:
        super().__init__()
        model = check_exportable(detector)
        self.model = model.cpu().eval()
        self.recipe = parse_score(detector.anomaly_score_)
        self.fits: dict[str, FittedScore] = {mode: detector.score_fits_[mode] for mode in (GIVEN, MARGINAL)}
        self.k = max(model.n_conditions, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        model, k = self.model, self.k
        xb = model.prepare(x)  # uint8: / 255; then the fitted affine map (VAE.prepare)
        b = xb.shape[0]
        c: Tensor | None = None
        onehot = xb.new_zeros(b, 0)
        if model.conditional:  # every sample under each condition, sample-major (as _posteriors)
            c = torch.arange(k).repeat(b)
            onehot = F.one_hot(c, model.n_conditions).float()
        mu, logvar = model.encode_each(xb, onehot)
        if k > 1:
            xb = xb.repeat_interleave(k, dim=0)
        post = Posterior(model, xb, c, mu, logvar, onehot, None)
        table = {base: (self._neighbours(mu, b) if base == "latent-knn" else SCORES[base](model, post))
                 .float().view(b, k) for base in self.recipe.bases}
        marginal = {base: values.min(dim=1).values.double() for base, values in table.items()}
        given = {base: values.double() for base, values in table.items()}
        return self._combine(self.fits[MARGINAL], marginal), self._combine(self.fits[GIVEN], given)

    def _neighbours(self, mu: Tensor, b: int) -> Tensor:
        """``latent-knn`` of every sample under each condition, sample-major (B * K,): the library's
        neighbour table over all the conditions at once (``LatentCodes.distance`` groups the rows
        by condition instead)."""
        per_condition = mu.view(b, self.k, -1).transpose(0, 1)  # (K, B, d)
        return self.model.latent_codes.table.mean_distance(per_condition).transpose(0, 1).reshape(-1)

    def _combine(self, fitted: FittedScore, bases: dict[str, Tensor]) -> Tensor:
        """``FittedScore.__call__`` in float64, on (B,) or (B, K) base scores."""
        if not self.recipe.needs_fit:
            return bases[self.recipe.terms[0].base]
        total = torch.zeros_like(next(iter(bases.values())))
        for term in self.recipe.terms:
            mean, sd = fitted.stats[term.base]
            z = (bases[term.base] - mean) / sd
            total = total + (z.abs() if term.typical else z)
        return total


def metadata(detector: AnomalyDetector) -> dict[str, str]:
    """What the runtime needs besides the graph: the format, the model, how to read inputs, the
    conditions and the thresholds (all strings; JSON where structured)."""
    model = check_exportable(detector)
    config = model.config
    return {
        FORMAT_KEY: FORMAT,
        "dcvae.format_version": FORMAT_VERSION,
        "dcvae.version": __version__,
        "dcvae.model": model.name,
        "dcvae.score": parse_score(detector.anomaly_score_).name,
        "dcvae.input_shape": json.dumps(list(config.input_shape)),
        "dcvae.input_pixels": json.dumps(detector.__dict__.get("input_", {}).get("pixels")),
        "dcvae.likelihood": config.likelihood,
        "dcvae.input": json.dumps(detector.__dict__.get("input_", {})),
        "dcvae.condition_names": json.dumps(list(config.condition_names)),
        "dcvae.conditional": json.dumps(bool(model.conditional)),
        "dcvae.threshold.given": repr(float(detector.thresholds_[GIVEN])),
        "dcvae.threshold.marginal": repr(float(detector.thresholds_[MARGINAL])),
        "dcvae.opset": str(OPSET),
        "dcvae.rows_per_run": str(rows_per_run(model, parse_score(detector.anomaly_score_).bases)),
    }


#: float64 elements of latent-knn's distance matrix in one run of the graph at most (128 MB)
_DISTANCES_PER_RUN = 1 << 24


def rows_per_run(model: VAE, bases: tuple[str, ...]) -> int:
    """Rows the runtime gives the graph at once: its ``CHUNK``, fewer where latent-knn's distances
    from every row under each condition to that condition's codes (rows × K × codes) would pass
    128 MB."""
    if "latent-knn" not in bases:
        return CHUNK
    k, width = model.latent_codes.table.codes.shape[:2]
    return max(1, min(CHUNK, _DISTANCES_PER_RUN // (k * width)))


def export_onnx(detector: AnomalyDetector, path: str | os.PathLike[str]) -> Path:
    """Write the detector's scoring graph to ``path`` (atomically), dynamic in the batch size, with
    its metadata; returns the path. Raises ValueError for what does not export (classical
    detectors, ``ic-elbo``, bf16)."""
    import onnx

    graph = ScoringGraph(detector)
    meta = metadata(detector)
    shape = tuple(graph.model.config.input_shape)
    example = torch.rand(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are not the user's concern
        exported = torch.onnx.export(
            graph, (example,), None, dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=list(OUTPUTS), dynamic_shapes=({0: torch.export.Dim("batch")},),
            optimize=True, verbose=False)
    if exported is None:  # pragma: no cover - dynamo=True always returns the program
        raise RuntimeError("torch.onnx.export returned no program")
    proto = exported.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "dcvae", __version__
    onnx.checker.check_model(proto)
    target = Path(path)
    atomic_write(target, lambda tmp: onnx.save_model(proto, str(tmp)))
    return target


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an exported file, read with onnx (for tests and messages)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
