"""Hostile inputs, tried systematically, at every edge of the library.

Each property throws generated inputs at one edge (the detector API, the user-data loaders, the
model and checkpoint files) and requires one of two outcomes:

* the call raises a ``ValueError`` (or one of its subclasses ``DataFileError``, ``ModelFileError``,
  ``ConfigError``, ``CheckpointError``) whose message names the problem or the file, never an
  exception from deep inside numpy, PyTorch or Pillow, and never after a long stall;
* or, only when the input is genuinely valid, it returns a result of the right shape whose scores
  are finite.

Which outcome is required is decided by an oracle written here from the documented rules, not by
asking the library. The cases tried are counted per area and reported at the end of the module
(``pytest -s`` shows the lines; ``DCVAE_HOSTILE_COUNTS=counts.json`` also writes them as JSON).
A case is one call judged: loading a damaged model file and then scoring with it counts twice,
as does loading a damaged checkpoint and resuming from it. ``DCVAE_HOSTILE_SCALE=10`` tries ten
times as many examples.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from dcvae.data import load_array_file, load_image_folder
from dcvae.detector import AnomalyDetector
from dcvae.io.model_dir import load_model
from dcvae.models import build_model
from dcvae.training import TensorData, TrainConfig, Trainer, TrainingDivergedError
from dcvae.training.checkpoint import TrainingState, load_checkpoint

ACCEPTED = (ValueError,)  # DataFileError, ModelFileError, ConfigError, CheckpointError are ValueErrors
SLOW = 20.0  # seconds; a single call on these tiny inputs that takes longer counts as a hang
TINY = {"hidden_dims": (16, 8), "latent_dim": 2, "epochs": 1, "progress": False}
IMAGE_SHAPE = (1, 8, 8)
TABLE_WIDTH = 5

# ------------------------------------------------------------------------------ counting

AREAS = {
    "detector.score": "detector: decision_function / predict",
    "detector.fit": "detector: fit",
    "loaders.csv": "loaders: CSV text",
    "loaders.arrays": "loaders: .npy / .npz arrays",
    "loaders.bytes": "loaders: random bytes as .npy / .npz / .csv",
    "loaders.images": "loaders: image folders",
    "files.model": "files: saved model (config.json, model.safetensors)",
    "files.checkpoint": "files: training checkpoint",
}
COUNTS: Counter[str] = Counter()


def _tally(area: str, outcome: str) -> None:
    assert area in AREAS
    COUNTS[f"{area}|cases"] += 1
    COUNTS[f"{area}|{outcome}"] += 1


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    report = {area: {"cases": COUNTS[f"{area}|cases"], "refused": COUNTS[f"{area}|refused"],
                     "accepted": COUNTS[f"{area}|accepted"]} for area in AREAS}
    print()
    for area, row in report.items():
        print(f"hostile inputs, {AREAS[area]}: {row['cases']} cases "
              f"({row['refused']} refused with a named error, {row['accepted']} accepted)")
    print(f"hostile inputs, total: {sum(r['cases'] for r in report.values())} cases")
    target = os.environ.get("DCVAE_HOSTILE_COUNTS")
    if target:
        Path(target).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


SCALE = float(os.environ.get("DCVAE_HOSTILE_SCALE", "1"))  # e.g. 10 for a longer hunt


def _settings(n: int) -> settings:
    return settings(max_examples=max(1, round(n * SCALE)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------ the verdict


@dataclass
class Verdict:
    """What the oracle expects. ``problems``: each a tuple of words, one of which the error must
    contain (the input is invalid). ``maybe``: borderline; an error is allowed if it says one of
    these words, and so is a (finite) result."""

    problems: list[tuple[str, ...]] = field(default_factory=list)
    maybe: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, other: Verdict) -> Verdict:
        return Verdict(self.problems + other.problems, self.maybe + other.maybe)


ANY_REASON = Verdict(maybe=[("",)])  # either outcome; a refusal need only name the file


def _mentions(message: str, groups: list[tuple[str, ...]]) -> bool:
    low = message.lower()
    return any(word.lower() in low for group in groups for word in group)


def _judge(verdict: Verdict, call, *, area: str, names: tuple[str, ...] = (),
           accepted: tuple[type[Exception], ...] = ACCEPTED):
    """Run ``call`` and check its outcome against ``verdict``; returns the result or None.

    ``names``: words (file names) of which an error must contain at least one, besides
    describing the problem. ``accepted``: the exception types that count as a clear refusal."""
    start = time.perf_counter()
    try:
        result = call()
    except accepted as err:
        elapsed = time.perf_counter() - start
        assert elapsed < SLOW, f"took {elapsed:.1f} s to refuse: {err}"
        message = str(err)
        assert message.strip(), f"{type(err).__name__} with an empty message"
        _tally(area, "refused")
        if names:
            assert any(n in message for n in names), f"the error does not name {names}: {message}"
        if verdict.problems:
            assert _mentions(message, verdict.problems + verdict.maybe), (
                f"error does not name the problem {verdict.problems}: {message}")
        else:
            assert verdict.maybe, f"a valid input was refused: {type(err).__name__}: {message}"
            assert _mentions(message, verdict.maybe), (
                f"borderline input refused for another reason than {verdict.maybe}: {message}")
        return None
    elapsed = time.perf_counter() - start
    assert elapsed < SLOW, f"took {elapsed:.1f} s"
    _tally(area, "accepted")
    assert not verdict.problems, f"an invalid input was accepted; its problems: {verdict.problems}"
    return result


# ------------------------------------------------------------------------------ hostile arrays

NUMERIC_DTYPES = ("uint8", "int8", "int16", "int64", "uint64", "float16", "float32", "float64")
OTHER_DTYPES = ("bool", "complex64", "complex128", "object", "str", "bytes", "timedelta64[s]",
                "datetime64[s]")
TORCH_DTYPES = ("uint8", "int8", "int16", "int64", "float16", "float32", "float64", "bool")
SPECIALS = (np.nan, np.inf, -np.inf, -1.0, -1e-3, 1.001, 1.5, 255.0, 256.0, 300.0, -0.0, 0.0, 1.0,
            0.5, 1e20, 1e30, 3.3e38, 1e39, 1e300, -1e300, 5e-324, 1 - 1e-12, 1 + 1e-12, 2.0**63)


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        if dtype == "object":
            return values.astype(object)
        if dtype == "str":
            return values.astype(str)
        if dtype == "bytes":
            return values.astype("S32")
        if dtype.startswith(("timedelta", "datetime")):
            return np.nan_to_num(values, posinf=0, neginf=0).astype(np.int64).astype(dtype)
        return values.astype(dtype)


@st.composite
def hostile_arrays(draw, sample_shapes: list[tuple[int, ...]], *, max_n: int = 4, min_valid_n: int = 1,
                   forms: tuple[str, ...] = ("array",) * 6 + ("list", "ragged", "scalar", "tensor")):
    """Arrays (or nested lists) of random rank, shape, dtype and values, often almost valid.

    ``sample_shapes[0]`` is a sample shape the target takes: a third of the arrays are valid
    images (uint8 0-255, ints, floats in [0, 1]) or features of that shape, before the specials."""
    mode = draw(st.sampled_from(["valid", "valid", "near", "near", "random", "random"]))
    if mode == "valid":
        shape = (draw(st.integers(min_valid_n, max_n)), *sample_shapes[0])
        if len(sample_shapes[0]) == 1:  # features
            dtype, base = draw(st.sampled_from(["float32", "float64", "float16", "int64"])), "normal"
        else:
            dtype = draw(st.sampled_from(["uint8", "float32", "float64", "int64"]))
            base = "byte" if dtype in ("uint8", "int64") else "unit"
    else:
        if mode == "near":  # a shape the target could take, or nearly
            shape = (draw(st.integers(0, max_n)), *draw(st.sampled_from(sample_shapes)))
        else:
            rank = draw(st.integers(0, 5))
            shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 8]), min_size=rank, max_size=rank)))
        dtype = draw(st.sampled_from(NUMERIC_DTYPES * 3 + OTHER_DTYPES))
        base = draw(st.sampled_from(["unit", "byte", "normal", "wide"]))
    size = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = {"unit": lambda: rng.random(size), "byte": lambda: rng.integers(0, 256, size) * 1.0,
              "normal": lambda: rng.normal(size=size), "wide": lambda: rng.normal(size=size) * 1e6}[base]()
    if size:
        n_specials = draw(st.sampled_from([0, 0, 1, 2, 3] if mode != "valid" else [0, 0, 0, 1]))
        for index, special in draw(st.lists(st.tuples(st.integers(0, size - 1), st.sampled_from(SPECIALS)),
                                            min_size=n_specials, max_size=n_specials)):
            values[index] = special
    arr = _cast(values.reshape(shape), dtype)
    if dtype == "object" and size and draw(st.booleans()):
        arr.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([None, "a", [1, 2], {"k": 1}]))
    form = draw(st.sampled_from(forms if mode != "valid" else ("array",) * 4 + forms))
    if form == "list" and arr.dtype.kind in "biuf":
        return arr.tolist()
    if form == "ragged" and arr.ndim >= 2 and arr.shape[0] >= 2 and arr.shape[1] >= 1:
        rows = arr.tolist()
        rows[-1] = rows[-1][:-1]
        return rows
    if form == "scalar":
        return draw(st.sampled_from([0.5, 3, "abc", None, b"\x00", 1j, float("nan")]))
    if form == "tensor" and dtype in TORCH_DTYPES:
        return torch.from_numpy(np.ascontiguousarray(arr))
    return arr


def _as_array(x: Any) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except (ValueError, TypeError):
        return None


def canonical_verdict(x: Any) -> tuple[Verdict, np.ndarray | None]:
    """The library's one input rule (dcvae.data.canonical), written out again from its docs: the
    problems that stop an input, or its canonical form."""
    a = _as_array(x)
    if a is None:
        return Verdict([("array",)]), None
    if a.dtype == object:  # numbers held as objects are read as numbers, anything else refused
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            return Verdict([("not a number",)]), None
    if a.dtype.kind not in "biuf":
        return Verdict([("dtype", "numeric", "real")]), None
    if a.ndim not in (2, 3, 4):
        return Verdict([("shape", "-d")]), None
    if 0 in a.shape:
        return Verdict([("empty", "zero-sized", "0 samples")]), None
    images = a[:, None] if a.ndim == 3 else a
    image = images.ndim == 4
    if image and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        return Verdict([("channels-last",)]), None
    if a.dtype == np.uint8:
        return Verdict(), images
    if a.dtype == np.bool_:
        return Verdict(), images.astype(np.uint8) * np.uint8(255) if image else a.astype(np.float32)
    if a.dtype.kind in "iu":
        if not image:
            return Verdict(), a.astype(np.float32)
        if a.min() < 0 or a.max() > 255:
            return Verdict([("0-255",)]), None
        return Verdict(), images.astype(np.uint8)
    if not np.isfinite(a).all():
        return Verdict([("nan", "infinite")]), None
    with np.errstate(all="ignore"):
        f32 = images.astype(np.float32)
    if not np.isfinite(f32).all():
        return Verdict([("float32", "too large")]), None
    if image and (f32.min() < 0 or f32.max() > 1):
        return Verdict([("[0, 1]",)]), None
    return Verdict(), f32


def x_verdict(x: Any, input_shape: tuple[int, ...] | None, *, bounded: bool, fit: bool = False) -> Verdict:
    """The detector's rules on top of the input rule: the trained sample shape, data in [0, 1] for
    a Bernoulli model, at least two samples to fit."""
    verdict, canonical = canonical_verdict(x)
    if canonical is None:
        return verdict
    if fit and canonical.shape[0] < 2:
        verdict.problems.append(("at least 2", "1 sample"))
    if input_shape is not None and canonical.shape[1:] != tuple(input_shape):
        verdict.problems.append(("shape",))
        return verdict
    if canonical.dtype == np.uint8:
        return verdict
    if bounded:  # features of a Bernoulli model: [0, 1]
        if canonical.min() < 0 or canonical.max() > 1:
            verdict.problems.append(("[0, 1]",))
    elif np.abs(canonical).max() > 1e15:  # Gaussian features this extreme may overflow float32 arithmetic
        verdict.maybe.append(("finite", "extreme"))
    return verdict


def _label_kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float" if math.isfinite(value) else "missing"
    if isinstance(value, str):
        return "str"
    return "other"


def c_verdict(c: Any, n: int | None, names: tuple[str, ...] | None, *, fit: bool = False) -> Verdict:
    """Conditions: one per sample, 1-D, no NaN / infinity / None. ``names``: the training
    conditions a conditional model scores in given mode (None: an unconditional model)."""
    if c is None:
        return Verdict()
    a = _as_array(c)
    if a is None:
        return Verdict([("condition", "array")])
    if n is None:  # X is invalid, so the number of samples is unknown
        return Verdict(maybe=[("condition", "per sample", "shape", "nan", "infinite", "missing")])
    if a.ndim != 1 or a.shape[0] != n:
        return Verdict([("per sample", "shape", "1-d")])
    values = a.tolist()
    kinds = [_label_kind(v) for v in values]
    if "missing" in kinds:
        return Verdict([("nan", "infinite", "missing", "none")])
    if fit:
        if a.dtype == object and len(set(kinds)) > 1 or "other" in kinds:
            return Verdict(maybe=[("condition", "type", "order", "print the same")])
        return Verdict()
    if names is None:  # unconditional: the values are not used
        return Verdict()
    if a.dtype == object and ({"float", "other"} & set(kinds) or len(set(kinds)) > 1):
        return Verdict(maybe=[("never seen",)])  # e.g. an object 1.0: its text is "1.0", not "1"
    for value, kind in zip(values, kinds, strict=True):
        if kind == "float" and float(value).is_integer():
            text = str(int(value))
        elif kind in ("int", "str"):
            text = str(value)
        else:  # bools, non-integral floats, complex, bytes, dates: never a training condition
            text = None
        if text not in names:
            return Verdict([("never seen",)])
    return Verdict()


def _condition_strategy(n_hint: int):
    """Conditions: right or wrong length and rank, every dtype, unknown labels, NaN, None."""
    length = st.sampled_from([n_hint, n_hint, n_hint, max(n_hint - 1, 0), n_hint + 1, 0])

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["valid"] * 4 + ["none"] * 3 + ["int", "float", "str", "bool", "object",
                                                                 "list", "2d", "scalar", "complex", "bytes"]))
        if kind == "none":
            return None
        if kind == "valid":  # the training conditions, as ints, floats or strings
            labels = np.arange(n_hint) % 3
            return labels.astype(draw(st.sampled_from([np.int64, np.float32, str, np.uint8])))
        m = draw(length)
        pool = draw(st.lists(st.sampled_from([0, 1, 2, 3, -1, 7, 1.0, 2.0, 0.5, np.nan, np.inf, 1e300,
                                              "0", "1", "2", "x", " 1", None, True]),
                             min_size=m, max_size=m))
        if kind == "scalar":
            return draw(st.sampled_from([1, "1", np.nan, None]))
        if kind == "2d":
            return np.zeros((m, 2), dtype=np.int64)
        if kind == "list":
            return pool
        if kind == "object":
            return np.array(pool + [None], dtype=object)[:m]
        numbers = [v for v in pool if isinstance(v, int | float) and not isinstance(v, bool)]
        numbers = (numbers * (m + 1))[:m] if numbers else [1] * m
        with np.errstate(all="ignore"):
            if kind == "int":
                return np.asarray([int(v) if math.isfinite(v) and abs(v) < 1e9 else 5 for v in numbers])
            if kind == "float":
                return np.asarray(numbers, dtype=draw(st.sampled_from(["float16", "float32", "float64"])))
            if kind == "str":
                return np.asarray([str(v) for v in pool], dtype=str) if pool else np.asarray([], dtype=str)
            if kind == "bool":
                return np.asarray([bool(v) for v in numbers], dtype=bool)
            if kind == "complex":
                return np.asarray(numbers, dtype=complex)
            return np.asarray([str(v).encode() for v in pool], dtype="S8")

    return build()


# ------------------------------------------------------------------------------ 1. detector


@pytest.fixture(scope="module")
def detectors():
    """dCVAE with 3 conditions and VAE on 8x8 uint8 images; a Gaussian VAE on 5 features."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 8, 8), dtype=np.uint8)
    features = rng.normal(size=(48, TABLE_WIDTH)) * 3.0 + 10.0
    found = {
        "dcvae": AnomalyDetector("dcvae", **TINY).fit(images, c=np.arange(48) % 3),
        "vae": AnomalyDetector("vae", **TINY).fit(images),
        "vae-tabular": AnomalyDetector("vae", **TINY).fit(features),
    }
    assert found["dcvae"].model_.config.condition_names == ("0", "1", "2")
    assert found["vae-tabular"].model_.config.likelihood == "gaussian"
    return found


IMAGE_SAMPLES = [(8, 8), (1, 8, 8), (3, 8, 8), (8, 8, 1), (64,), (1, 7, 7), (2, 1, 8, 8)]  # valid first
TABLE_SAMPLES = [(TABLE_WIDTH,), (TABLE_WIDTH,), (4,), (1, TABLE_WIDTH), (TABLE_WIDTH, 1)]


@_settings(500)
@given(data=st.data())
def test_scoring_hostile_inputs_refuses_clearly_or_scores_finitely(detectors, data):
    which = data.draw(st.sampled_from(sorted(detectors)), label="model")
    det = detectors[which]
    tabular = which == "vae-tabular"
    x = data.draw(hostile_arrays(TABLE_SAMPLES if tabular else IMAGE_SAMPLES), label="X")
    arr = _as_array(x)
    n = arr.shape[0] if arr is not None and arr.ndim >= 1 else 0
    c = data.draw(_condition_strategy(n), label="c")
    model = det.model_
    names = model.config.condition_names if model.conditional else None
    verdict = x_verdict(x, model.config.input_shape, bounded=not tabular)
    n_valid = n if not verdict.problems else None
    verdict = verdict.add(c_verdict(c, n_valid, names))
    predict = data.draw(st.booleans(), label="predict")
    call = (lambda: det.predict(x, c)) if predict else (lambda: det.decision_function(x, c))
    out = _judge(verdict, call, area="detector.score")
    if out is not None:
        assert isinstance(out, np.ndarray) and out.shape == (n,), out
        if predict:
            assert set(np.unique(out)) <= {0, 1}
        else:
            assert out.dtype == np.float64 and np.isfinite(out).all(), out


@_settings(100)
@given(data=st.data())
def test_fitting_hostile_inputs_refuses_clearly_or_trains(data):
    name = data.draw(st.sampled_from(["dcvae", "vae"]), label="model")
    small = data.draw(st.sampled_from([[(3,), (2, 2), (1, 3, 3)], [(1, 3, 3), (3,), (3, 3, 3), (4, 4)]]))
    x = data.draw(hostile_arrays(small, max_n=6, min_valid_n=2), label="X")
    arr = _as_array(x)
    n = arr.shape[0] if arr is not None and arr.ndim >= 1 else 0
    c = data.draw(_condition_strategy(n), label="c")
    verdict = x_verdict(x, None, bounded=False, fit=True)
    verdict = verdict.add(c_verdict(c, n if not verdict.problems else None, None, fit=True))
    det = AnomalyDetector(name, **TINY)
    # Features so extreme that float32 overflows (say 1e20 beside 0.3, one sample per split) may
    # make training diverge: TrainingDivergedError names that, and is allowed only in those cases.
    fitted = _judge(verdict, lambda: det.fit(x, c=c), area="detector.fit",
                    accepted=(*ACCEPTED, TrainingDivergedError))
    if fitted is None:
        assert not hasattr(det, "model_"), "a refused fit left a model behind"
        return
    scores = fitted.decision_function(x)
    assert scores.shape == (n,) and np.isfinite(scores).all()
    assert all(math.isfinite(t) for t in fitted.thresholds_.values())


# ------------------------------------------------------------------------------ 2. loaders


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A fresh folder per example (function-scoped tmp_path does not reset between examples);
    the previous example's folder is removed, so thousands of examples leave one behind."""
    root = tmp_path_factory.mktemp("hostile")
    previous: list[Path] = []

    def fresh() -> Path:
        while previous:
            shutil.rmtree(previous.pop(), ignore_errors=True)
        previous.append(Path(tempfile.mkdtemp(dir=root)))
        return previous[-1]

    return fresh


def _file_verdict_error(path: Path, verdict: Verdict, call, area: str):
    return _judge(verdict, call, area=area, names=(path.name,))


def _check_labelled(result, *, conditioned: bool) -> None:
    """Consistency of any accepted array file: finite canonical samples (uint8 or float32), labels fit."""
    data, names = result
    x, y = data.x, data.y
    assert x.ndim in (2, 4) and len(x) >= 1 and 0 not in x.shape, x.shape
    assert x.dtype in (np.float32, np.uint8)
    assert np.isfinite(x).all()
    assert y.dtype == np.int64 and y.shape == (len(x),)
    assert len(set(names)) == len(names) and all(isinstance(s, str) for s in names)
    if conditioned:
        assert names and y.min() >= 0 and y.max() < len(names)
        assert set(np.unique(y)) == set(range(len(names))), "a condition name without a sample"
    else:
        assert names == () and (y == -1).all()


CSV_CELLS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e39", "-1e39", "0x10", "1_0", "abc",
                     "é", '"1,2"', '"', 'a"b', "\t", "1 ", " 2", "--1", "+3", ".", "1e", "١٢", "\x00", "\r"]),
    st.text(max_size=4),
)
WORDS = st.text(alphabet="abcdefgh", min_size=1, max_size=4)


@st.composite
def csv_cases(draw):
    """(text, condition_column, expected or None): expected only for a clean, valid table."""
    clean = draw(st.booleans())
    ncol = draw(st.integers(1, 4))
    nrow = draw(st.integers(0 if not clean else 2, 5))
    header = draw(st.lists(WORDS, min_size=ncol, max_size=ncol, unique=True)) if draw(st.booleans()) else None
    cond = draw(st.one_of(st.none(), st.integers(-ncol, ncol - 1))) if clean else draw(st.one_of(
        st.none(), st.integers(-6, 6), st.sampled_from((header or []) + ["missing", "label"]),
        st.sampled_from([1.0, True, b"a", [0]])))
    if isinstance(cond, int) and not isinstance(cond, bool) and clean and ncol == 1:
        cond = None  # a table with only a condition column has no features
    if clean:
        numbers = st.one_of(st.integers(-10**6, 10**6),
                            st.floats(-1e30, 1e30, allow_nan=False))
        rows = [[repr(draw(numbers)) for _ in range(ncol)] for _ in range(nrow)]
        if isinstance(cond, int) and header is not None and draw(st.booleans()):
            cond = header[cond]  # by name
        if cond is not None:
            idx = header.index(cond) if isinstance(cond, str) else cond % ncol
            for row in rows:
                row[idx] = draw(st.one_of(WORDS, st.integers(0, 3).map(str)))
        lines = ([header] if header else []) + rows
        text = "\n".join(",".join(r) for r in lines) + "\n"
        return text, cond, (header, rows)
    rows = [draw(st.lists(CSV_CELLS, min_size=ncol, max_size=ncol)) for _ in range(nrow)]
    if rows and draw(st.integers(0, 4)) == 0:  # a ragged row
        r = draw(st.integers(0, len(rows) - 1))
        rows[r] = rows[r][:-1] if draw(st.booleans()) else rows[r] + ["1"]
    lines = ([header] if header else []) + rows
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(r) for r in lines) + draw(st.sampled_from(["", newline]))
    return text, cond, None


def _csv_verdict(text: str, cond: Any) -> Verdict:
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if any(r)]
    verdict = Verdict()
    if cond is not None and (isinstance(cond, bool) or not isinstance(cond, int | str)):
        verdict.problems.append(("condition_column",))
    if not rows:
        verdict.problems.append(("empty",))
        return verdict
    if len({len(r) for r in rows}) > 1:
        verdict.problems.append(("columns",))
    ncol = len(rows[0])
    if isinstance(cond, int) and not isinstance(cond, bool) and not -ncol <= cond < ncol:
        verdict.problems.append(("out of range",))
    verdict.maybe.append(("csv", "header", "number", "column", "condition", "empty", "no features"))
    return verdict


def _check_csv_result(result, text: str, cond: Any) -> None:
    _check_labelled(result, conditioned=cond is not None)
    data, names = result
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if any(r)]
    n = len(data.x)
    assert len(rows) in (n, n + 1)
    body, ncol = rows[-n:], len(rows[0])
    if isinstance(cond, str):
        assert len(rows) == n + 1
        idx = [c.strip() for c in rows[0]].index(cond)
    else:
        idx = None if cond is None else cond % ncol
    for i, row in enumerate(body):
        features = [float(v) for j, v in enumerate(row) if j != idx]
        np.testing.assert_array_equal(data.x[i], np.asarray(features, dtype=np.float32))
        if idx is not None:
            assert names[data.y[i]] == row[idx].strip()


@_settings(300)
@given(case=csv_cases())
def test_csv_text_is_read_exactly_or_refused_naming_the_file(scratch, case):
    text, cond, clean = case
    path = scratch() / "table.csv"
    path.write_text(text, encoding="utf-8", newline="")
    verdict = Verdict() if clean is not None else _csv_verdict(text, cond)
    result = _file_verdict_error(path, verdict, lambda: load_array_file(path, condition_column=cond),
                                 "loaders.csv")
    if result is not None:
        _check_csv_result(result, text, cond)
        if clean is not None:  # a clean table: every row written is a sample, the header is not
            header, rows = clean
            assert len(result[0].x) == len(rows), f"{len(rows)} rows written, {len(result[0].x)} read"


TRIPPED: list[str] = []


def _trip() -> str:
    TRIPPED.append("unpickled")
    return "payload"


class Tripwire:
    """Unpickling this runs ``_trip``: proof that a loader unpickled a file."""

    def __reduce__(self):
        return (_trip, ())


def test_the_tripwire_is_live():
    pickle.loads(pickle.dumps(Tripwire()))
    assert TRIPPED == ["unpickled"]
    TRIPPED.clear()


def _expected_features(x: np.ndarray) -> tuple[Verdict, np.ndarray | None]:
    """The loader's documented conversion of a data array: the input rule, after the loader's own
    checks for an array without samples or features."""
    if x.ndim == 0 or x.shape[0] == 0:
        return Verdict([("no samples",)]), None
    if 0 in x.shape:
        return Verdict([("no features", "zero-sized")]), None
    return canonical_verdict(x)


def _label_texts(cond: np.ndarray) -> list[str]:
    """Condition names as the docs give them: integral floats (below 2**53) named like integers."""
    return [str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 2.0**53 else str(v)
            for v in cond.tolist()]


@st.composite
def array_files(draw):
    """(suffix, {key: array}, condition_column) for a .npy or .npz file."""
    x = draw(hostile_arrays([(3,), (2, 4), (4, 4), (1, 4, 4), (3, 4, 4), (4, 4, 3), (2, 4, 4)],
                            forms=("array",)))
    if x.dtype == object and draw(st.booleans()) and x.size:
        x.flat[0] = Tripwire()
    suffix = draw(st.sampled_from([".npy", ".npz"]))
    arrays = {"x": x}
    if suffix == ".npz":
        key = draw(st.sampled_from(["x", "x", "data", "arr_0"]))
        arrays = {key: x}
        n = x.shape[0] if x.ndim else 1
        for extra in draw(st.lists(st.sampled_from(["c", "y", "z"]), max_size=2, unique=True)):
            cond = draw(_condition_strategy(n))
            cond = np.asarray([] if cond is None else cond)
            if cond.dtype == object and cond.size and draw(st.booleans()):
                cond[0] = Tripwire()
            arrays[extra] = cond
    column = draw(st.one_of(st.none(), st.integers(-4, 4), st.sampled_from(["c", "y", "x", "z", "missing"]),
                            st.sampled_from([1.5, True])))
    return suffix, arrays, column


def _array_file_verdict(suffix: str, arrays: dict[str, np.ndarray], column: Any
                        ) -> tuple[Verdict, np.ndarray | None, np.ndarray | None]:
    """What loading must give: problems, or the expected features and condition array."""
    if column is not None and (isinstance(column, bool) or not isinstance(column, int | str)):
        return Verdict([("condition_column",)]), None, None
    if suffix == ".npy":
        if isinstance(column, str):
            return Verdict([("column names",)]), None, None
        x, cond_key = arrays["x"], None
    else:
        keys = list(arrays)
        if isinstance(column, str):
            if column not in keys:
                return Verdict([("no array",)]), None, None
            cond_key = column
        else:
            present = [k for k in ("c", "y") if k in keys]
            if len(present) > 1:
                return Verdict([("both 'c' and 'y'",)]), None, None
            cond_key = present[0] if present else None
        data_keys = [k for k in keys if k != cond_key]
        if "x" in keys:
            x_key = "x"
        elif len(data_keys) == 1:
            x_key = data_keys[0]
        else:
            return Verdict([("cannot tell",)]), None, None
        x = arrays[x_key]
    pickled = Verdict([("pickle", "object")])
    if x.dtype == object:
        return pickled, None, None
    cond = None
    if cond_key is not None:
        cond = arrays[cond_key]
        if cond.dtype == object:
            return pickled, None, None
    if isinstance(column, int):
        if x.ndim != 2:
            return Verdict([("2-d table",)]), None, None
        if not -x.shape[1] <= column < x.shape[1]:
            return Verdict([("out of range",)]), None, None
        cond, x = x[:, column], np.delete(x, column % x.shape[1], axis=1)
    verdict, features = _expected_features(x)
    if verdict.problems or cond is None:
        return verdict, features, cond
    if cond.ndim != 1 or cond.shape[0] != x.shape[0]:
        return Verdict([("conditions must be 1-d",)]), None, None
    if cond.dtype.kind == "f" and not np.isfinite(cond).all():
        return Verdict([("missing conditions",)]), None, None
    return verdict, features, cond


@_settings(300)
@given(case=array_files())
def test_array_files_load_exactly_or_are_refused_without_unpickling(scratch, case):
    suffix, arrays, column = case
    path = scratch() / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, arrays["x"], allow_pickle=True)
    else:
        np.savez(path, **arrays)  # pickles object arrays, as np.savez always does
    verdict, features, cond = _array_file_verdict(suffix, arrays, column)
    result = _file_verdict_error(path, verdict, lambda: load_array_file(path, condition_column=column),
                                 "loaders.arrays")
    assert not TRIPPED, "a loader unpickled an object array"
    if result is None:
        return
    _check_labelled(result, conditioned=cond is not None)
    data, names = result
    np.testing.assert_array_equal(data.x, features)
    assert data.x.dtype == features.dtype
    if cond is not None:
        assert [names[i] for i in data.y] == _label_texts(cond)


NPY_HEADER_PIECES = st.lists(st.sampled_from([
    "{", "}", "'descr':", "'<f8'", "'|u1'", "'O'", "'<U3'", "'xyz'", "'fortran_order':", "False", "True",
    "'shape':", "(", ")", "[", "]", ",", " ", "2", "8", "99999999999", "-1", "__import__('os')", "'", "\\",
    "\n",
]), max_size=16).map("".join)


@st.composite
def random_files(draw):
    suffix = draw(st.sampled_from([".npy", ".npz", ".csv"] * 3 + [".txt", ".npy.gz", ""]))
    if draw(st.integers(0, 19)) == 0:
        return suffix, None  # no file at all
    prefix = draw(st.sampled_from([b"", b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"PK\x03\x04",
                                   b"\xef\xbb\xbf", b"1,2\n"]))
    if prefix.startswith(b"\x93NUMPY") and draw(st.booleans()):
        header = draw(NPY_HEADER_PIECES).encode()
        size = len(header) if draw(st.booleans()) else draw(st.integers(0, 300))
        width = 2 if prefix[6] == 1 else 4
        prefix += size.to_bytes(width, "little") + header
    return suffix, prefix + draw(st.binary(max_size=200))


@st.composite
def npy_with_header(draw):
    """A well-formed .npy header that promises an array the file does not hold (or does)."""
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 3, 4, 10**5, 10**9, 10**12, 2**62]), min_size=1,
                                max_size=4)))
    descr = draw(st.sampled_from(["<f8", "|u1", "<i8", ">f4", "<c16", "|O", "<U4", "|b1"]))
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": draw(st.booleans()),
                                                  "shape": shape})
    return ".npy", buffer.getvalue() + draw(st.binary(max_size=128))


@_settings(200)
@given(case=st.one_of(random_files(), npy_with_header()))
def test_random_bytes_under_a_data_suffix_are_refused_naming_the_file(scratch, case):
    suffix, blob = case
    path = scratch() / f"blob{suffix}"
    if blob is None:  # a missing file: FileNotFoundError (not a ValueError), naming it
        _judge(Verdict([("no such file",)]), lambda: load_array_file(path), area="loaders.bytes",
               names=(path.name,), accepted=(FileNotFoundError,))
        return
    path.write_bytes(blob)
    verdict = Verdict(maybe=[(path.name,)])  # the file is named in every refusal
    if suffix not in (".npy", ".npz", ".csv"):
        verdict = Verdict([("unsupported file type",)])
    result = _file_verdict_error(path, verdict, lambda: load_array_file(path), "loaders.bytes")
    if result is not None:
        _check_labelled(result, conditioned=False)


def _image_bytes(kind: str, size: tuple[int, int], mode: str) -> bytes:
    rng = np.random.default_rng(size[0] * 31 + size[1])
    shape = (*size, 3) if mode == "RGB" else size
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG" if kind == "png" else "JPEG")
    return buffer.getvalue()


@st.composite
def image_folders(draw):
    """A folder layout: {relative path: bytes or None (a folder)}, and what each file is."""
    layout = draw(st.sampled_from(["flat", "classes"]))
    classes = [""] if layout == "flat" else draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1,
                                                          max_size=3, unique=True))
    files: dict[str, bytes | None] = {}
    kinds: dict[str, str] = {}
    for k, cls in enumerate(classes):
        if cls:
            files[cls] = None
        for i in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["png", "png", "jpg", "random", "truncated", "empty", "flipped",
                                         "text"]))
            size = draw(st.sampled_from([(4, 4), (4, 4), (6, 5)]))
            mode = draw(st.sampled_from(["L", "RGB"]))
            ext = {"jpg": ".jpg", "text": ".txt"}.get(kind, draw(st.sampled_from([".png", ".jpg"])))
            name = f"{cls}/img{k}{i}{ext}" if cls else f"img{k}{i}{ext}"
            if kind in ("png", "jpg"):
                blob = _image_bytes(kind, size, mode)
            elif kind == "random":
                blob = draw(st.binary(min_size=1, max_size=300))
            elif kind == "truncated":
                full = _image_bytes("png", size, mode)
                blob = full[:draw(st.integers(0, len(full) - 1))]
            elif kind == "flipped":
                blob = bytearray(_image_bytes("png", size, mode))
                at = draw(st.integers(0, len(blob) - 1))
                blob[at] ^= draw(st.integers(1, 255))
                blob = bytes(blob)
            elif kind == "empty":
                blob = b""
            else:
                blob = b"not an image"
            files[name] = blob
            kinds[name] = f"{kind}:{size[0]}x{size[1]}"
    resize = draw(st.sampled_from([None, None, (4, 4), (3, 7)]))
    mode = draw(st.sampled_from(["auto", "auto", "L", "RGB"]))
    return files, kinds, resize, mode


@_settings(150)
@given(case=image_folders())
def test_image_folders_load_or_are_refused_naming_the_file(scratch, case):
    files, kinds, resize, mode = case
    root = scratch() / "images"
    root.mkdir()
    for rel, blob in files.items():
        if blob is None:
            (root / rel).mkdir(parents=True, exist_ok=True)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(blob)
    images = {rel: k for rel, k in kinds.items() if not k.startswith("text")}
    folders = sorted(rel for rel, blob in files.items() if blob is None)
    verdict = Verdict()
    if not images or any(not any(r.startswith(f + "/") for r in images) for f in folders):
        verdict.problems.append(("no images",))
    broken = [rel for rel, k in images.items() if k.split(":")[0] in ("random", "empty", "truncated",
                                                                      "flipped")]
    for rel in broken:
        (verdict.maybe if images[rel].split(":")[0] != "empty" else verdict.problems).append(
            (Path(rel).name,))
    sizes = {k.split(":")[1] for rel, k in images.items() if rel not in broken}
    if resize is None and len(sizes) > 1:
        (verdict.maybe if broken else verdict.problems).append(("differ in size",))
    if resize is None and broken:
        verdict.maybe.append(("differ in size",))  # a damaged file may still decode, at a new size
    result = _judge(verdict, lambda: load_image_folder(root, size=resize, mode=mode), area="loaders.images")
    if result is None:
        return
    data, names = result
    assert data.x.dtype == np.uint8 and data.x.ndim == 4 and len(data.x) == len(images)
    if resize is not None:
        assert data.x.shape[2:] == resize
    if mode != "auto":
        assert data.x.shape[1] == (1 if mode == "L" else 3)
    assert tuple(names) == tuple(folders)


# ------------------------------------------------------------------------------ 3. model files


@pytest.fixture(scope="module")
def saved_files(detectors, tmp_path_factory):
    """The bytes of a saved dCVAE detector and of a 1-epoch training checkpoint."""
    root = tmp_path_factory.mktemp("saved")
    detectors["dcvae"].save(root / "model")
    model = build_model("dcvae", input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8],
                        condition_names=["a", "b"])
    rng = np.random.default_rng(1)
    train = TensorData.from_numpy(rng.integers(0, 256, (12, 1, 4, 4), dtype=np.uint8), np.arange(12) % 2)
    checkpoint = root / "checkpoint.safetensors"
    config = TrainConfig(epochs=1, batch_size=4)
    Trainer(model, config, progress=False).fit(train, train, checkpoint=checkpoint)
    with safe_open(str(checkpoint), framework="pt") as handle:
        meta = json.loads(handle.metadata()["dcvae"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    return Saved({
        "config": (root / "model" / "config.json").read_bytes(),
        "weights": (root / "model" / "model.safetensors").read_bytes(),
        "checkpoint": checkpoint.read_bytes(), "checkpoint_meta": meta, "checkpoint_tensors": tensors,
        "train": train, "config_obj": config,
    })


class Saved(dict):
    """The saved files' bytes; kept out of failure reports."""

    def __repr__(self) -> str:
        return f"Saved({sorted(self)})"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
    | st.sampled_from(["mlp", "conv", "dcvae", "vae", "bernoulli", "gaussian", "0", "recon"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
DEEP = "\u0000deep"
HUGE = "\u0000huge"


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@dataclass(frozen=True)
class Mutant:
    """Damaged JSON text; shown in a failure report by what was done to it, not in full."""

    text: str
    what: str

    def __repr__(self) -> str:
        return f"Mutant({self.what}: {self.text[:200]!r}{'...' if len(self.text) > 200 else ''})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@st.composite
def json_mutants(draw, original: dict[str, Any]) -> Mutant:
    """JSON text: the original with one value replaced, a key dropped or added, or bytes-level damage."""
    meta = json.loads(json.dumps(original))
    paths = [p for p in _paths(meta) if p]
    path = draw(st.sampled_from(paths))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "deep", "huge", "scale"]))
    if action == "drop":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=5))] = draw(JSON_VALUES)
    elif action == "deep":
        parent[path[-1]] = DEEP
    elif action == "huge":
        parent[path[-1]] = HUGE
    elif action == "scale" and _is_number(parent[path[-1]]):
        parent[path[-1]] = parent[path[-1]] * draw(st.sampled_from([-1, 0, 10**3, 10**8, 10**12]))
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    text = json.dumps(meta)
    text = text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    return Mutant(text.replace(json.dumps(HUGE), "7" * 5000), f"{action} at {list(path)}")


@st.composite
def byte_mutants(draw, original: bytes) -> bytes | None:
    """Damaged bytes, or None: the file is missing."""
    actions = ["truncate", "flip", "flips", "insert", "random", "empty"] * 4 + ["missing"]
    action = draw(st.sampled_from(actions))
    if action == "missing":
        return None
    blob = bytearray(original)
    if action == "truncate":
        return bytes(blob[:draw(st.integers(0, len(blob) - 1))])
    if action == "random":
        return draw(st.binary(max_size=400))
    if action == "empty":
        return b""
    if action == "insert":
        at = draw(st.integers(0, len(blob)))
        return bytes(blob[:at]) + draw(st.binary(min_size=1, max_size=8)) + bytes(blob[at:])
    for _ in range(1 if action == "flip" else draw(st.integers(2, 8))):
        # the header (JSON) of a safetensors file is at the front: aim there half of the time
        limit = min(len(blob), 600) if draw(st.booleans()) else len(blob)
        at = draw(st.integers(0, limit - 1))
        blob[at] ^= draw(st.integers(1, 255))
    return bytes(blob)


PROBE = np.random.default_rng(5).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)


@_settings(300)
@given(data=st.data())
def test_damaged_model_files_are_refused_naming_the_file_or_load(saved_files, scratch, data):
    target = data.draw(st.sampled_from(["config.json", "model.safetensors"]), label="file")
    if target == "config.json" and data.draw(st.booleans()):
        blob = data.draw(json_mutants(json.loads(saved_files["config"])), label="json").text.encode()
    else:
        blob = data.draw(byte_mutants(saved_files["config" if target == "config.json" else "weights"]),
                         label="bytes")
    folder = scratch() / "model"
    folder.mkdir()
    (folder / "config.json").write_bytes(saved_files["config"])
    (folder / "model.safetensors").write_bytes(saved_files["weights"])
    if blob is None:
        (folder / target).unlink()
    else:
        (folder / target).write_bytes(blob)
    loader = data.draw(st.sampled_from(["detector", "load_model"]), label="loader")
    call = (lambda: AnomalyDetector.load(folder)) if loader == "detector" else (lambda: load_model(folder))
    verdict = Verdict([("not found",)]) if blob is None else ANY_REASON
    loaded = _judge(verdict, call, area="files.model",
                    names=(target, "config.json", str(folder)))
    if loaded is None:
        return
    if loader == "detector":
        # a file that loads must score like a model: finite scores, or a refusal that says why
        verdict = Verdict(maybe=[("finite", "shape", "[0, 1]", "condition")])
        model = loaded.model_
        probe = (PROBE if model.config.input_shape == IMAGE_SHAPE
                 else np.zeros((3, *model.config.input_shape), dtype=np.uint8))
        scores = _judge(verdict, lambda: loaded.decision_function(probe), area="files.model")
        assert scores is None or (scores.shape == (3,) and np.isfinite(scores).all())
        if set(loaded.thresholds_) != {"given", "marginal"}:
            pytest.fail(f"loaded thresholds {loaded.thresholds_}")
    else:
        assert isinstance(loaded.model, torch.nn.Module)


@_settings(200)
@given(data=st.data())
def test_damaged_checkpoints_are_refused_naming_the_file_or_resume(saved_files, scratch, data):
    path = scratch() / "checkpoint.safetensors"
    if data.draw(st.booleans(), label="metadata"):
        text = data.draw(json_mutants(saved_files["checkpoint_meta"]), label="json").text
        tensors = dict(saved_files["checkpoint_tensors"])
        if tensors and data.draw(st.booleans(), label="tensor damage"):
            key = data.draw(st.sampled_from(sorted(tensors)), label="tensor")
            tensors[key] = data.draw(st.sampled_from([torch.zeros(0), torch.full((3,), float("nan")),
                                                      torch.ones(2, 2, dtype=torch.float64)]))
        save_file(tensors, str(path), metadata={"dcvae": text})
    else:
        blob = data.draw(byte_mutants(saved_files["checkpoint"]), label="bytes")
        if blob is not None:
            path.write_bytes(blob)
    verdict = ANY_REASON if path.exists() else Verdict([("no checkpoint",)])
    state = _judge(verdict, lambda: load_checkpoint(path), area="files.checkpoint",
                   names=(path.name,))
    if state is None:
        return
    assert isinstance(state, TrainingState)
    # It loads: resuming from it either continues the run or refuses, naming the checkpoint.
    model = build_model("dcvae", input_shape=[1, 4, 4], latent_dim=2, hidden_dims=[8],
                        condition_names=["a", "b"])
    trainer = Trainer(model, saved_files["config_obj"], progress=False)
    train = saved_files["train"]
    history = _judge(ANY_REASON, lambda: trainer.fit(train, train, checkpoint=path, resume=True),
                     area="files.checkpoint", names=(path.name,))
    if history is not None:
        assert all(torch.isfinite(p).all() for p in model.parameters())
