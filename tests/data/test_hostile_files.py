"""Hostile files at the loaders (CSV text, .npy/.npz arrays, random bytes, image folders): see
tests/hostile.py."""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile import (
    Verdict,
    _check_labelled,
    _condition_strategy,
    _condition_text,
    _file_verdict_error,
    _judge,
    _settings,
    canonical_verdict,
    hostile_arrays,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dcvae.data import load_array_file, load_image_folder, read_image_folder

pytestmark = pytest.mark.usefixtures("hostile_counts")  # fixtures: tests/conftest.py

# ------------------------------------------------------------------------------ 2. loaders


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
    """Condition names as the docs give them (the oracle's ``_condition_text``)."""
    return [_condition_text(v) for v in cond.tolist()]


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
    root = _write_folder(scratch() / "images", files)
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


def _write_folder(root: Path, files: dict[str, bytes | None]) -> Path:
    root.mkdir()
    for rel, blob in files.items():
        if blob is None:
            (root / rel).mkdir(parents=True, exist_ok=True)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(blob)
    return root


DAMAGED = ("random", "empty", "truncated", "flipped")


@_settings(100)
@given(case=image_folders())
def test_image_folders_read_skipping_the_unreadable_list_every_file_once(scratch, case):
    """``skip_unreadable`` (what ``dcvae score`` uses): every image file is either read or listed as
    skipped, never both, never neither; the good ones are always read, the empty ones always
    skipped; the folder fails only on its layout or when nothing can be read (issue 15, item 8)."""
    files, kinds, resize, mode = case
    root = _write_folder(scratch() / "images", files)
    images = {rel: k.split(":")[0] for rel, k in kinds.items() if not k.startswith("text")}
    folders = sorted(rel for rel, blob in files.items() if blob is None)
    good = {rel for rel, kind in images.items() if kind not in DAMAGED}
    verdict = Verdict()
    if not images or any(not any(r.startswith(f + "/") for r in images) for f in folders):
        verdict.problems.append(("no images",))
    if not good:  # only damaged files: the few that still decode may be read, or none
        (verdict.problems if all(k == "empty" for k in images.values()) else verdict.maybe).append(
            ("could be read",))
    sizes = {kinds[rel].split(":")[1] for rel in good}
    if resize is None and len(sizes) > 1:
        (verdict.maybe if len(good) < len(images) else verdict.problems).append(("differ in size",))
    if resize is None and len(good) < len(images):
        verdict.maybe.append(("differ in size",))  # a damaged file may still decode, at a new size
    result = _judge(verdict, lambda: read_image_folder(root, size=resize, mode=mode, skip_unreadable=True),
                    area="loaders.images")
    if result is None:
        return
    read = [p.relative_to(root).as_posix() for p in result.files]
    skipped = [Path(e.path).relative_to(root).as_posix() for e in result.skipped]
    assert sorted(read + skipped) == sorted(images) and not set(read) & set(skipped)
    assert good <= set(read) and {r for r, k in images.items() if k == "empty"} <= set(skipped)
    assert len(result.data.x) == len(read) == len(result.data.y)
    assert all(e.problem for e in result.skipped)
