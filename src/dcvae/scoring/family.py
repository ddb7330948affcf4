"""The anomaly-score family: the model's primitive scores, and scores built from them.

A score name is one or more terms joined by ``+``; a term is a base score, optionally prefixed
``typical-``. Base scores:

- ``recon``, ``elbo``, ``kl``, ``prior``: the model's own (see ``dcvae.scoring.scores``);
- ``ic-elbo``: the complexity-corrected likelihood of Serrà et al. 2020 ("Input complexity and
  out-of-distribution detection with likelihood-based generative models"): E(x) - L(x), with L(x)
  the PNG-compressed length of the image in bits × ln 2 (nats, like E). A simple image explains
  its own low E; a complex one its high E. Images only.

Built scores, *fitted on normal validation data only* (never on anomalies or test labels):

- ``typical-S``: |S(x) - mean| / sd of S over normal data: the two-sided typicality test of
  Nalisnick et al. 2019 ("Detecting out-of-distribution inputs to deep generative models using
  typicality"). A sample scoring far *below* normal data is as suspect as one far above.
- ``A+B(+...)``: the sum of each term standardised on normal data, (S(x) - mean) / sd (for a
  ``typical-`` term, the typicality itself), so no term dominates by its units.

In marginal mode each base score is its own minimum over the conditions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from dcvae.classical import CLASSICAL, ClassicalModel
from dcvae.models.base import VAE
from dcvae.scoring.scores import SCORES, score_table

CORRECTED = {"ic-elbo": "elbo"}  # complexity-corrected score -> the likelihood score it corrects
#: Every base score a model of the library offers: the VAEs' (and the complexity-corrected one),
#: then the classical detectors' own.
BASE_SCORES = (*sorted(SCORES), *sorted(CORRECTED),
               *dict.fromkeys(s for cls in CLASSICAL.values() for s in cls.scores if s not in SCORES))
#: The detector's default: the reconstruction error of Eq. 17, chosen by issue 6's rule (dCVAE's
#: best mean *validation* AUC on MNIST + Fashion-MNIST leave-one-out, every class) after 1 epoch and
#: after 10 (benchmarks/results/score_study10.json). On 4 classes only, `recon+prior` led at 10
#: epochs, but it fell behind over all 10 and lost on KMNIST, EMNIST, one-class MNIST and the demo.
DEFAULT_SCORE = "recon"
TYPICAL = "typical-"
_MIN_SD = 1e-12


@dataclass(frozen=True)
class Term:
    base: str
    typical: bool

    @property
    def name(self) -> str:
        return f"{TYPICAL if self.typical else ''}{self.base}"


@dataclass(frozen=True)
class ScoreRecipe:
    """A parsed score name."""

    name: str
    terms: tuple[Term, ...]

    @property
    def needs_fit(self) -> bool:
        """Whether the score needs statistics of normal data (typicality or a combination)."""
        return len(self.terms) > 1 or self.terms[0].typical

    @property
    def bases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.base for t in self.terms))


def parse_score(name: str) -> ScoreRecipe:
    """``"recon"``, ``"typical-elbo"``, ``"recon+kl"``, ...; a clear error for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a score name must be a non-empty string, got {name!r}")
    terms = []
    for part in name.split("+"):
        part = part.strip()
        typical = part.startswith(TYPICAL)
        base = part[len(TYPICAL):] if typical else part
        if base not in BASE_SCORES:
            raise ValueError(
                f"unknown score {name!r}: {part!r} is not a score. A score is one of "
                f"{list(BASE_SCORES)}, optionally prefixed 'typical-', or several joined by '+' "
                "(e.g. 'typical-elbo', 'recon+kl')")
        terms.append(Term(base, typical))
    if len({t.name for t in terms}) != len(terms):
        raise ValueError(f"score {name!r} repeats a term")
    return ScoreRecipe("+".join(t.name for t in terms), tuple(terms))


def input_complexity(x: np.ndarray) -> np.ndarray:
    """L(x) in nats: each image's PNG-compressed length in bits × ln 2 (Serrà et al. 2020).

    ``x``: uint8 images (n, C, H, W), or floats in [0, 1] (quantised to 8 bits), C = 1 or 3.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"the input complexity (score 'ic-elbo') needs images of shape (n, 1 or 3, H, W), "
                         f"got {x.shape}; for feature vectors use 'elbo' or 'typical-elbo'")
    images = x if x.dtype == np.uint8 else np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    out = np.empty(len(images), dtype=np.float64)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
        out[i] = 8 * buffer.getbuffer().nbytes * math.log(2)
    return out


def offered_scores(model: type[VAE] | type[ClassicalModel] | VAE | ClassicalModel) -> tuple[str, ...]:
    """The base scores a model (or model class) offers; the first is its default score. A fitted
    VAE offers ``latent`` only with the Gaussians of its training codes (not a model of 0.1), and
    ``latent-knn`` only with the codes themselves (not a model saved before that score)."""
    if isinstance(model, ClassicalModel) or (isinstance(model, type) and issubclass(model, ClassicalModel)):
        return model.scores
    own = set(SCORES) - {DEFAULT_SCORE}
    if isinstance(model, VAE) and getattr(model, "latent_gaussians", None) is None:
        own -= {"latent"}
    if isinstance(model, VAE) and getattr(model, "latent_codes", None) is None:
        own -= {"latent-knn"}
    return (DEFAULT_SCORE, *sorted(own), *sorted(CORRECTED))


def default_score(model: type[VAE] | type[ClassicalModel] | VAE | ClassicalModel) -> str:
    """The score a detector of this model uses when none is asked for."""
    if isinstance(model, ClassicalModel) or (isinstance(model, type) and issubclass(model, ClassicalModel)):
        return model.scores[0]
    return model.default_score


def base_scores(model: VAE | ClassicalModel, x: np.ndarray, c: np.ndarray | None, bases: tuple[str, ...],
                **kwargs: Any) -> dict[str, np.ndarray]:
    """Each base score of ``x``, from one pass of the model (``kwargs`` go to ``score_table``;
    with ``per_condition=True`` a marginal-mode score is (n, K), one column per condition)."""
    offered = offered_scores(model)
    missing = [b for b in bases if b not in offered]
    if missing:
        raise ValueError(f"{model.name} offers the scores {list(offered)}, not {missing}")
    if isinstance(model, ClassicalModel):
        return model.score_table(x, c, scores=tuple(bases), **kwargs)
    needed = tuple(sorted({CORRECTED.get(b, b) for b in bases}))
    out = score_table(model, x, c, scores=needed, **kwargs)
    return with_corrected(out, x, bases)


def with_corrected(out: dict[str, np.ndarray], x: np.ndarray, bases: tuple[str, ...]
                   ) -> dict[str, np.ndarray]:
    """``bases`` from the model's own scores ``out``, adding the complexity-corrected ones, which
    need no pass of the model: ic-elbo = elbo - L(x)."""
    out = dict(out)
    for corrected, likelihood in CORRECTED.items():
        if corrected in bases and corrected not in out:
            complexity = input_complexity(np.asarray(x))
            out[corrected] = out[likelihood] - (complexity[:, None] if out[likelihood].ndim == 2
                                                else complexity)
    return {b: out[b] for b in bases}


@dataclass(frozen=True)
class FittedScore:
    """A score with the normal-data statistics it needs (empty for a plain base score)."""

    recipe: ScoreRecipe
    stats: dict[str, tuple[float, float]]  # base -> (mean, sd) on normal data

    def __call__(self, bases: dict[str, np.ndarray]) -> np.ndarray:
        if not self.recipe.needs_fit:
            return np.asarray(bases[self.recipe.terms[0].base], dtype=np.float64)
        total = np.zeros(len(next(iter(bases.values()))), dtype=np.float64)
        for term in self.recipe.terms:
            mean, sd = self.stats[term.base]
            z = (bases[term.base] - mean) / sd
            total += np.abs(z) if term.typical else z
        return total

    def to_dict(self) -> dict[str, list[float]]:
        return {base: [mean, sd] for base, (mean, sd) in self.stats.items()}

    @classmethod
    def from_dict(cls, recipe: ScoreRecipe, stats: dict[str, Any]) -> FittedScore:
        expected = set(recipe.bases) if recipe.needs_fit else set()
        if not isinstance(stats, dict) or set(stats) != expected:
            raise ValueError(f"score {recipe.name!r} needs normal-data statistics for exactly "
                             f"{sorted(expected)}, got {stats!r}")
        parsed = {}
        for base, pair in stats.items():
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v) for v in pair) or pair[1] <= 0):
                raise ValueError(f"statistics of {base!r} must be [mean, sd > 0], got {pair!r}")
            parsed[base] = (float(pair[0]), float(pair[1]))
        return cls(recipe, parsed)


def fit_score(recipe: ScoreRecipe, normal: dict[str, np.ndarray]) -> FittedScore:
    """Fit on base scores of *normal* data: the caller passes nothing else (no labels at all)."""
    if not recipe.needs_fit:
        return FittedScore(recipe, {})
    stats = {}
    for base in recipe.bases:
        values = np.asarray(normal[base], dtype=np.float64)
        if values.size < 2 or not np.isfinite(values).all():
            raise ValueError(f"score {recipe.name!r} needs at least 2 finite normal {base!r} scores "
                             "to fit on")
        stats[base] = (float(values.mean()), max(float(values.std()), _MIN_SD))
    return FittedScore(recipe, stats)
