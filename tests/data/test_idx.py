"""Readers of IDX and npz files, on tiny synthetic files."""

from __future__ import annotations

import gzip
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcvae.data import DataFileError, DatasetNotFoundError, read_idx, read_npz_array
from dcvae.data.idx import idx_bytes

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_uint8(make_idx: Callable[..., Path], compress: bool) -> None:
    path = make_idx(IMAGES, "images.idx", compress=compress)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 4, 3)
    np.testing.assert_array_equal(out, IMAGES)
    assert out.flags.writeable and out.flags.c_contiguous


def test_gzip_detected_by_magic_not_suffix(make_idx: Callable[..., Path]) -> None:
    np.testing.assert_array_equal(read_idx(make_idx(IMAGES, "plain.gz", compress=False)), IMAGES)
    np.testing.assert_array_equal(read_idx(make_idx(IMAGES, "packed.raw")), IMAGES)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_other_dtypes_come_back_native(make_idx: Callable[..., Path], dtype: type) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    out = read_idx(make_idx(arr, "a.idx"))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_idx_bytes_refuses_unstorable_arrays() -> None:
    with pytest.raises(ValueError, match="IDX cannot store dtype uint16"):
        idx_bytes(np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="IDX cannot store an array of shape"):
        idx_bytes(np.zeros((), np.uint8))


def test_labels_1d(make_idx: Callable[..., Path]) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(make_idx(labels, "l.idx")), labels)


def _expect_error(path: Path, fragment: str) -> DataFileError:
    with pytest.raises(DataFileError) as info:
        read_idx(path)
    assert path.name in str(info.value)
    assert fragment in str(info.value)
    return info.value


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad-magic.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    _expect_error(path, "magic bytes 0102, expected 0000")


def test_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "bad-type.idx"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    _expect_error(path, "unknown IDX type code 0x07")


def test_truncated_payload(tmp_path: Path) -> None:
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(IMAGES)[:-5])
    _expect_error(path, "payload truncated: header says (5, 4, 3) = 60 bytes, found 55")


def test_truncated_payload_gzip(tmp_path: Path) -> None:
    path = tmp_path / "short.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES)[:-5]))
    _expect_error(path, "payload truncated: header says (5, 4, 3) = 60 bytes, found 55")


def test_payload_longer_than_header(tmp_path: Path) -> None:
    path = tmp_path / "long.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES) + b"\x00\x01"))
    _expect_error(path, "payload longer than the header says: expected 60 bytes, found 2 extra")
    raw = tmp_path / "long.idx"
    raw.write_bytes(idx_bytes(IMAGES) + b"\x00\x01")
    _expect_error(raw, "payload longer than the header says")


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:-4])
    _expect_error(path, "gzip data truncated")


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(IMAGES)))
    data[-6] ^= 0xFF  # inside the CRC32 trailer
    path = tmp_path / "crc.idx.gz"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt gzip data")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.idx"
    path.write_bytes(b"")
    _expect_error(path, "too short for an IDX header")


def test_absurd_header_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.idx.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3))
    _expect_error(path, "but the file can hold at most")


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


def test_errors_pickle() -> None:
    err = pickle.loads(pickle.dumps(DataFileError("a/b.idx", "broken")))
    assert isinstance(err, DataFileError) and str(err) == "a/b.idx: broken"
    nf = pickle.loads(pickle.dumps(DatasetNotFoundError("msg", missing=("f",))))
    assert isinstance(nf, FileNotFoundError) and str(nf) == "msg" and nf.missing == ("f",)


# ---------------------------------------------------------------- properties

VALID_GZ = gzip.compress(idx_bytes(IMAGES), mtime=0)
VALID_RAW = idx_bytes(IMAGES)
_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(data=st.data())
def test_any_truncation_raises_data_file_error(tmp_path: Path, data: st.DataObject) -> None:
    blob = data.draw(st.sampled_from([VALID_GZ, VALID_RAW]))
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    path = tmp_path / "cut.idx"
    path.write_bytes(blob[:cut])
    with pytest.raises(DataFileError, match="cut.idx"):
        read_idx(path)


@_SETTINGS
@given(data=st.data())
def test_any_byte_flip_is_data_file_error_or_valid(tmp_path: Path, data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from([VALID_GZ, VALID_RAW])))
    pos = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    path = tmp_path / "flip.idx"
    path.write_bytes(bytes(blob))
    try:
        out = read_idx(path)
    except DataFileError as err:
        assert "flip.idx" in str(err)
    else:
        assert isinstance(out, np.ndarray)


# ---------------------------------------------------------------- npz


def test_npz_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "imgs.npz"
    np.savez_compressed(path, arr_0=IMAGES)
    np.testing.assert_array_equal(read_npz_array(path), IMAGES)

    with pytest.raises(DataFileError, match=r"imgs\.npz.*no array named 'x'.*\['arr_0'\]"):
        read_npz_array(path, "x")

    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataFileError, match=r"cut\.npz.*cannot read array 'arr_0'"):
        read_npz_array(cut)

    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, IMAGES)
    with pytest.raises(DataFileError, match="found a single .npy array"):
        read_npz_array(npy)

    objects = tmp_path / "objects.npz"
    np.savez(objects, arr_0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataFileError, match=r"objects\.npz"):
        read_npz_array(objects)


def test_npz_bad_crc(tmp_path: Path) -> None:
    path = tmp_path / "crc.npz"
    np.savez(path, arr_0=IMAGES)
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo("arr_0.npy").header_offset
    blob[offset + 30 + len("arr_0.npy") + 140] ^= 0xFF  # inside the stored array bytes
    path.write_bytes(bytes(blob))
    with pytest.raises(DataFileError, match=r"crc\.npz"):
        read_npz_array(path)
