"""Hostile inputs, tried systematically, at every edge of the library.

Each property throws generated inputs at one edge (the detector API, the user-data loaders, the
model and checkpoint files) and requires one of two outcomes:

* the call raises a ``ValueError`` (or one of its subclasses ``DataFileError``, ``ModelFileError``,
  ``ConfigError``, ``CheckpointError``) whose message names the problem or the file, never an
  exception from deep inside numpy, PyTorch or Pillow, and never after a long stall;
* or, only when the input is genuinely valid, it returns a result of the right shape whose scores
  are finite.

Which outcome is required is decided by an oracle written here from the documented rules, not by
asking the library. The cases tried are counted per area and reported at the end of each module
(``pytest -s`` shows the lines; ``DCVAE_HOSTILE_COUNTS=counts.json`` also writes them as JSON).

This module holds what the three hostile suites share: the oracle's verdicts, the generators,
the counting. The suites are ``tests/detector/test_hostile_inputs.py`` (the detector API),
``tests/data/test_hostile_files.py`` (the loaders) and ``tests/io/test_hostile_model_files.py``
(model and checkpoint files).
A case is one call judged: loading a damaged model file and then scoring with it counts twice,
as does loading a damaged checkpoint and resuming from it. ``DCVAE_HOSTILE_SCALE=10`` tries ten
times as many examples.
"""

from __future__ import annotations

import json
import math
import os
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
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dcvae.detector import AnomalyDetector

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


@pytest.fixture(scope="module")
def hostile_counts():
    """Count a module's cases and print them at its end (``pytestmark = pytest.mark.usefixtures``)."""
    COUNTS.clear()
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
        tensor = torch.from_numpy(np.ascontiguousarray(arr))
        if tensor.is_floating_point() and draw(st.booleans()):
            tensor.requires_grad_(True)  # taken by its values, like any tensor (issue 15, item 21)
        return tensor
    return arr


def _as_array(x: Any) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):  # the documented rule: a tensor is read by its values
        return x.detach().cpu().numpy()
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


def _condition_text(value: Any) -> str:
    """A condition's name, as the docs give it: integral floats (below 2**53) like integers."""
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(value) < 2.0**53:
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def c_verdict(c: Any, n: int | None, names: tuple[str, ...] | None, *, fit: bool = False) -> Verdict:
    """Conditions: one value per sample, 1-D, no NaN / infinity / None / empty name. ``names``: the
    training conditions a conditional model scores in given mode (None: an unconditional model).
    A Python list keeps each value's kind; an array is read as numpy holds it."""
    if c is None:
        return Verdict()
    try:
        a = np.asarray(c, dtype=object if isinstance(c, list | tuple) else None)
    except (ValueError, TypeError):
        return Verdict([("condition", "array")])
    if n is None:  # X is invalid, so the number of samples is unknown
        return Verdict(maybe=[("condition", "per sample", "shape", "nan", "infinite", "missing", "empty")])
    if a.ndim != 1 or a.shape[0] != n:
        return Verdict([("per sample", "shape", "1-d")])
    values = a.tolist()
    if any(isinstance(v, list | tuple | dict | set | np.ndarray) for v in values):
        return Verdict([("one value", "per sample")])
    if any(_label_kind(v) == "missing" for v in values):
        return Verdict([("nan", "infinite", "missing", "none")])
    texts = [_condition_text(v) for v in values]
    if any(not t.strip() for t in texts):
        return Verdict([("empty",)])
    if fit or names is None:  # fitting takes any names; an unconditional model uses none
        return Verdict()
    if any(t not in names for t in texts):
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



# ------------------------------------------------------------------------------ shared fixtures


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



