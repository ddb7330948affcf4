"""Readers for the IDX format (MNIST family) and the official KMNIST ``.npz`` files.

Every way a file can be wrong (bad magic, truncated gzip, payload shorter or longer than
its header says, missing npz key, ...) is reported as one :class:`DataFileError` that names
the file, never as an exception from deep inside gzip or numpy.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataFileError

__all__ = ["IDX_DTYPES", "idx_bytes", "read_idx", "read_npz_array", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> numpy dtype; multi-byte types are big-endian on disk.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Deflate cannot compress better than about 1032:1; a header that promises more data than
# that is corrupt, and we refuse it before allocating memory for it.
_MAX_DEFLATE_RATIO = 1100


def _read_exact(stream: io.BufferedIOBase, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads."""
    parts = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _readinto_exact(stream: io.BufferedIOBase, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; return how many bytes were read (less at EOF)."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:])
        if not n:
            break
        filled += n
    return filled


def _parse(path: Path, stream: io.BufferedIOBase, max_payload: int | None) -> np.ndarray:
    """Parse an IDX stream positioned at its first byte."""
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise DataFileError(path, f"too short for an IDX header: {len(head)} bytes, expected 4+")
    if head[:2] != b"\x00\x00":
        raise DataFileError(
            path, f"not an IDX file: magic bytes {head[:2].hex()}, expected 0000"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFileError(path, f"unknown IDX type code 0x{code:02X}, expected one of {known}")
    if ndim == 0:
        raise DataFileError(path, "IDX header declares 0 dimensions, expected 1 or more")
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataFileError(
            path, f"header truncated: {ndim} dimensions need {4 * ndim} bytes, "
            f"found {len(raw_dims)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    if max_payload is not None and expected > max_payload:
        raise DataFileError(
            path, f"header says {dims} = {expected:,} payload bytes, but the file can hold at "
            f"most {max_payload:,}"
        )
    out = np.empty(math.prod(dims), dtype=dtype)
    got = _readinto_exact(stream, out.data.cast("B"))
    if got < expected:
        raise DataFileError(
            path, f"payload truncated: header says {dims} = {expected:,} bytes, found {got:,}"
        )
    extra = len(_read_exact(stream, 1 << 16))
    if extra:
        more = "" if extra < 1 << 16 else "+"
        raise DataFileError(
            path, f"payload longer than the header says: expected {expected:,} bytes, "
            f"found {extra:,}{more} extra"
        )
    if dtype.byteorder == ">":
        out = out.astype(dtype.newbyteorder("="))
    return out.reshape(dims)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip'd or raw, into a writeable array of the declared shape.

    Gzip is detected from the magic bytes, not the file name. The payload is read straight
    into the returned array (no intermediate copy), so uint8 files come back as they are.
    Multi-byte IDX types are converted to native byte order.

    Raises
    ------
    DataFileError
        If the file is not valid IDX, is truncated, or has trailing data.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not is_gzip:
            return _parse(path, raw, max_payload=size)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(path, stream, max_payload=size * _MAX_DEFLATE_RATIO)
        except EOFError as err:
            raise DataFileError(path, f"gzip data truncated ({err})") from err
        except (gzip.BadGzipFile, zlib.error) as err:
            raise DataFileError(path, f"corrupt gzip data ({err})") from err


def read_npz_array(path: str | os.PathLike[str], key: str = "arr_0") -> np.ndarray:
    """Read one array from an ``.npz`` archive without allowing pickled objects.

    Raises
    ------
    DataFileError
        If the file is not a valid npz archive, lacks ``key``, or the array needs pickle.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataFileError(path, "expected an .npz archive, found a single .npy array")
        with loaded as archive:
            if key not in archive.files:
                raise DataFileError(
                    path, f"no array named {key!r}; the archive holds {sorted(archive.files)}"
                )
            return archive[key]
    except DataFileError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError, zlib.error, SyntaxError,
            tokenize.TokenError, MemoryError) as err:  # the last three: hostile .npy headers
        raise DataFileError(path, f"cannot read array {key!r}: {err}") from err


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise an array in the IDX format (big-endian header and payload).

    The inverse of :func:`read_idx`; useful to convert data and to build test files.
    """
    arr = np.asarray(arr)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = arr.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; use one of {list(codes)}")
    if arr.ndim == 0 or arr.ndim > 255 or max(arr.shape) >= 2**32:
        raise ValueError(f"IDX cannot store an array of shape {arr.shape}")
    code = codes[native]
    header = struct.pack(f">BBBB{arr.ndim}I", 0, 0, code, arr.ndim, *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], arr: np.ndarray, *, compress: bool = True) -> Path:
    """Write ``arr`` as an IDX file, gzip'd (mtime 0, reproducible bytes) by default."""
    path = Path(path)
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path
