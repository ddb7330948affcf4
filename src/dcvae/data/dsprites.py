"""dSprites (Matthey et al. 2017, DeepMind): binary 64x64 sprites, every combination of five factors once.

The grid is the published recipe: shape (square, ellipse, heart), scale (6 values in [0.5, 1]),
orientation (40 values in [0, 2 pi], both ends included), posX and posY (32 values each in [0, 1]),
plus a constant colour (white): 737,280 images. Row ``i`` holds the combination
``np.unravel_index(i, (3, 6, 40, 32, 32))`` (the last factor, posY, varies fastest), the order of the
original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``, so the two are interchangeable.

* :func:`load` reads the original file when ``data_dir`` holds it (also under ``dsprites/``), else
  generates. :func:`read_original` reads it without unpickling anything (its ``metadata`` entry is a
  pickle and is never touched). :func:`generate` renders the grid, or a seeded subsample of it.
* Images stay bit-packed (``np.packbits`` along the width: 512 bytes an image, 377 MB for the full
  set instead of 3 GB); :meth:`DSprites.images` unpacks the rows asked for as ``uint8 (m, 1, 64, 64)``
  with values 0/255, the library's intensity convention.

How the generated images differ from the original: they are a re-rendering by the published recipe,
not the same pixels. The outlines are this module's own (a square; an ellipse with axes 2:1; the
classic heart curve ``x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t``), each a polygon
whose farthest point lies ``15 * scale`` pixels from the sprite's centre (about which it is rotated,
counter-clockwise on screen), rasterised by pixel-centre inclusion; the sprite sizes, the extent of
the positions and the rounding are therefore not the original's. Position mapping: the sprite's
centre is the centre of pixel ``16 + 31 * pos`` (column for posX, left to right; row for posY, top
to bottom), so posX and posY move it by exactly one pixel a step over pixels 16..47 and the sprite
(at most 15 pixels from its centre) never touches the canvas border. The factor values are the
original's: shape 1, 2, 3; scale ``linspace(0.5, 1, 6)``; orientation ``linspace(0, 2 pi, 40)``;
positions ``linspace(0, 1, 32)``.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .arrays import LabelledArray
from .errors import DataFileError

__all__ = [
    "CLASS_NAMES",
    "DSprites",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_VALUES",
    "IMAGE_SIZE",
    "N_IMAGES",
    "ORIGINAL_FILE",
    "factors_of",
    "find_original",
    "generate",
    "index_of",
    "load",
    "read_original",
    "render",
    "render_sprite",
    "values_of",
]

PathLike = str | os.PathLike[str]

#: The original file's name (DeepMind's dsprites-dataset repository).
ORIGINAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
#: The factors kept (the original's first, colour, is constant and dropped).
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
#: The shape factor's classes, in the original's order.
CLASS_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
N_IMAGES = 737_280
IMAGE_SIZE = 64
#: The original's value of each class of each factor.
FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
for _values in FACTOR_VALUES:
    _values.flags.writeable = False

_RADIUS = 15.0  # px from the centre to the sprite's farthest point at scale 1
_HALF = 15  # the sprite tile spans pixels -15..15 about its centre pixel
_TILE = 2 * _HALF + 1
_FIRST_CENTRE = 16  # the centre pixel at pos 0; pos 1 is pixel 16 + 31 = 47
_ROW_BYTES = IMAGE_SIZE // 8
_N_SPRITES = FACTOR_SIZES[0] * FACTOR_SIZES[1] * FACTOR_SIZES[2]
_PLACE_CHUNK = 65_536  # images placed at once: bounds the temporaries to ~16 MB each
_READ_CHUNK = 16_384  # original images decompressed at once (64 MB)
_ORIGINAL_KEYS = ("imgs", "latents_classes", "latents_values")


# ---------------------------------------------------------------------------------------------
# Factor grid
# ---------------------------------------------------------------------------------------------

def factors_of(indices: Any) -> np.ndarray:
    """Factor classes ``int64 (n, 5)`` of grid indices (row-major over :data:`FACTOR_SIZES`)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(indices) and (indices.min() < 0 or indices.max() >= N_IMAGES):
        raise ValueError(f"grid indices must be in [0, {N_IMAGES}), got {indices.min()}..{indices.max()}")
    return np.stack(np.unravel_index(indices, FACTOR_SIZES), axis=1).astype(np.int64)


def index_of(factors: Any) -> np.ndarray:
    """Grid indices ``int64 (n,)`` of factor classes ``(n, 5)``; the inverse of :func:`factors_of`."""
    factors = _check_factors(factors)
    return np.ravel_multi_index(tuple(factors.T), FACTOR_SIZES).astype(np.int64)


def values_of(factors: Any) -> np.ndarray:
    """Factor values ``float64 (n, 5)`` of factor classes ``(n, 5)``, as the original stores them."""
    factors = _check_factors(factors)
    return np.stack([values[factors[:, k]] for k, values in enumerate(FACTOR_VALUES)], axis=1)


def _check_factors(factors: Any) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES) or not (
        np.issubdtype(factors.dtype, np.integer) or factors.size == 0
    ):
        raise ValueError(f"factors must be integers of shape (n, 5), got {factors.dtype} {factors.shape}")
    factors = factors.astype(np.int64)
    if len(factors) and ((factors < 0).any() or (factors >= np.array(FACTOR_SIZES)).any()):
        raise ValueError(f"factor classes out of range; the sizes are {FACTOR_SIZES}")
    return factors


def _check_subsample(subsample: int | None) -> None:
    if subsample is None:
        return
    if isinstance(subsample, bool) or not isinstance(subsample, int | np.integer):
        raise TypeError(f"subsample must be an int or None, got {type(subsample).__name__}")
    if subsample < 1:
        raise ValueError(f"subsample must be at least 1, got {subsample}")


def _draw(total: int, subsample: int, seed: int) -> np.ndarray:
    """``subsample`` distinct positions in ``range(total)``, seeded, in increasing order."""
    _check_subsample(subsample)
    if subsample > total:
        raise ValueError(f"subsample must be at most {total}, got {subsample}")
    picked = np.random.default_rng(seed).choice(total, size=int(subsample), replace=False)
    # Sorted, so a subsample is a subsequence of the full set, in its order.
    return np.sort(picked).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=3)
def _outline(shape: int) -> np.ndarray:
    """The shape's polygon ``(V, 2)`` (x right, y up), centred, its farthest vertex at distance 1."""
    if shape == 0:
        a = np.sqrt(0.5)
        points = np.array([[a, a], [-a, a], [-a, -a], [a, -a]])
    elif shape == 1:
        # Half a step of phase keeps the vertices off the axes, hence off pixel centres.
        t = (np.arange(96) + 0.5) * (2 * np.pi / 96)
        points = np.stack([np.cos(t), 0.5 * np.sin(t)], axis=1)
    else:
        t = (np.arange(128) + 0.5) * (2 * np.pi / 128)
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        points = np.stack([x, y], axis=1)
        points -= (points.max(axis=0) + points.min(axis=0)) / 2  # centre of the bounding box
        points /= np.hypot(points[:, 0], points[:, 1]).max()
    points.flags.writeable = False
    return points


def _rasterise(vertices: np.ndarray) -> np.ndarray:
    """Pixel-centre inclusion (even-odd rule) of polygons ``(B, V, 2)`` in pixels about the tile's
    centre pixel: bool ``(B, 31, 31)``, row 0 at the top."""
    offsets = np.arange(_TILE, dtype=np.float64) - _HALF
    px, py = offsets, -offsets  # rows go down, y goes up
    x1, y1 = vertices[..., 0][:, None, :], vertices[..., 1][:, None, :]
    x2, y2 = np.roll(x1, -1, axis=2), np.roll(y1, -1, axis=2)
    rows = py[None, :, None]
    crosses = (y1 > rows) != (y2 > rows)  # the edge straddles the row's line of pixel centres
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (rows - y1) * (x2 - x1) / (y2 - y1)
    x_at = np.where(crosses, x_at, -np.inf)  # (B, rows, V)
    crossings = (x_at[:, :, None, :] > px[None, None, :, None]).sum(axis=-1)
    return (crossings % 2).astype(bool)


def _sprite_tiles(shape: int, scales: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Tiles bool ``(B, 31, 31)`` of one shape at paired scales and angles (radians)."""
    c, s = np.cos(angles), np.sin(angles)
    rotation = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (B, 2, 2)
    vertices = np.einsum("bij,vj->bvi", rotation * (_RADIUS * scales)[:, None, None], _outline(shape))
    return _rasterise(vertices)


def render_sprite(shape: int, scale: float, orientation: float) -> np.ndarray:
    """One sprite at any scale and orientation (radians): bool ``(31, 31)``, centred on pixel (15, 15).

    The grid's sprites are this at the grid's values; it is public so that properties such as
    rotation symmetry can be checked off the grid.
    """
    if shape not in (0, 1, 2):
        raise ValueError(f"shape must be 0 (square), 1 (ellipse) or 2 (heart), got {shape}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1] so the sprite fits its tile, got {scale}")
    return _sprite_tiles(shape, np.array([float(scale)]), np.array([float(orientation)]))[0]


def _grid_tiles(inflate: float = 1.0, turn: float = 0.0) -> np.ndarray:
    """The 720 grid sprites, bool ``(720, 31, 31)`` in (shape, scale, orientation) row-major order.

    ``inflate`` and ``turn`` perturb every outline; they exist for the test that shows no pixel
    centre lies on an outline, so ulp-level differences in sin/cos cannot change a pixel.
    """
    scales, angles = np.meshgrid(FACTOR_VALUES[1], FACTOR_VALUES[2], indexing="ij")
    scales, angles = scales.ravel() * inflate, angles.ravel() + turn
    return np.concatenate([_sprite_tiles(shape, scales, angles) for shape in range(3)])


@lru_cache(maxsize=1)
def _sprite_rows() -> np.ndarray:
    """Each grid sprite's 31 rows as 64-bit masks ``uint64 (720, 31)`` at posX = 0: bit ``63 - c``
    is column ``c``, the big-endian reading of the row's packed bytes, so a shift right by ``k``
    moves the sprite ``k`` pixels right."""
    rows = np.zeros((_N_SPRITES, _TILE, IMAGE_SIZE), dtype=bool)
    left = _FIRST_CENTRE - _HALF
    rows[:, :, left:left + _TILE] = _grid_tiles()
    masks = np.packbits(rows, axis=-1).view(">u8")[..., 0].astype(np.uint64)
    masks.flags.writeable = False
    return masks


def render(factors: Any) -> np.ndarray:
    """Render factor classes ``(n, 5)`` as bit-packed images ``uint8 (n, 64, 8)``.

    Each image is its (shape, scale, orientation) sprite moved by whole pixels: the centre is pixel
    ``16 + posX`` across and ``16 + posY`` down (class indices).
    """
    factors = _check_factors(factors)
    n = len(factors)
    masks = _sprite_rows()
    sprite = np.ravel_multi_index(tuple(factors[:, :3].T), FACTOR_SIZES[:3])
    out = np.zeros((n, IMAGE_SIZE), dtype=">u8")  # filled with native ints: numpy swaps the bytes
    tile_rows = np.arange(_TILE) + (_FIRST_CENTRE - _HALF)
    for start in range(0, n, _PLACE_CHUNK):
        part = slice(start, min(start + _PLACE_CHUNK, n))
        shift = factors[part, 3].astype(np.uint64)[:, None]
        rows = factors[part, 4][:, None] + tile_rows
        out[np.arange(part.start, part.stop)[:, None], rows] = masks[sprite[part]] >> shift
    return out.view(np.uint8).reshape(n, IMAGE_SIZE, _ROW_BYTES)


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class DSprites:
    """dSprites images (bit-packed) with their factors.

    Attributes
    ----------
    packed
        ``uint8 (n, 64, 8)``: ``np.packbits`` of each image along its width (1 = sprite).
    factors
        ``int64 (n, 5)``: class index of shape, scale, orientation, posX, posY.
    factor_values
        ``float64 (n, 5)``: the same factors' values (shape 1..3, scale, radians, positions in [0, 1]).
    source
        ``"generated"`` or the path of the original file read.
    """

    packed: np.ndarray
    factors: np.ndarray
    factor_values: np.ndarray
    source: str = "generated"

    factor_names: ClassVar[tuple[str, ...]] = FACTOR_NAMES
    factor_sizes: ClassVar[tuple[int, ...]] = FACTOR_SIZES
    class_names: ClassVar[tuple[str, ...]] = CLASS_NAMES

    def __post_init__(self) -> None:
        n = len(self.packed)
        if self.packed.dtype != np.uint8 or self.packed.shape[1:] != (IMAGE_SIZE, _ROW_BYTES):
            raise ValueError(f"packed must be uint8 (n, 64, 8), got {self.packed.dtype} {self.packed.shape}")
        if self.factors.dtype != np.int64 or self.factors.shape != (n, 5):
            raise ValueError(f"factors must be int64 ({n}, 5), got {self.factors.dtype} {self.factors.shape}")
        if self.factor_values.dtype != np.float64 or self.factor_values.shape != (n, 5):
            raise ValueError(
                f"factor_values must be float64 ({n}, 5), got {self.factor_values.dtype} "
                f"{self.factor_values.shape}"
            )

    def __len__(self) -> int:
        return len(self.packed)

    def __repr__(self) -> str:
        return f"DSprites(n={len(self)}, source={self.source!r}, {self.nbytes / 2**20:.1f} MiB)"

    @property
    def classes(self) -> np.ndarray:
        """``int64 (n,)``: the shape index (0 square, 1 ellipse, 2 heart)."""
        return self.factors[:, 0]

    @property
    def indices(self) -> np.ndarray:
        """``int64 (n,)``: each row's index in the full grid (and in the original file)."""
        return index_of(self.factors)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the packed images dominate)."""
        return self.packed.nbytes + self.factors.nbytes + self.factor_values.nbytes

    def images(self, rows: Any = None) -> np.ndarray:
        """Unpack ``rows`` (an index array, mask or slice; all when None: 3 GB for the full set) as
        ``uint8 (m, 1, 64, 64)`` with values 0 and 255."""
        packed = self.packed if rows is None else self.packed[rows]
        pixels = np.unpackbits(packed, axis=-1)
        pixels *= 255
        return pixels.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)

    def labelled(self, rows: Any = None) -> LabelledArray:
        """The images of ``rows`` labelled by shape, the library's container."""
        classes = self.classes if rows is None else self.classes[rows]
        return LabelledArray(self.images(rows), np.ascontiguousarray(classes))

    def subset(self, rows: Any) -> DSprites:
        """The rows picked by an index array, mask or slice (copies)."""
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        return DSprites(self.packed[rows].copy(), self.factors[rows].copy(),
                        self.factor_values[rows].copy(), self.source)


# ---------------------------------------------------------------------------------------------
# Generation, the original file, and the loader
# ---------------------------------------------------------------------------------------------

def generate(subsample: int | None = None, seed: int = 0) -> DSprites:
    """Render the dSprites grid: all 737,280 images (377 MB packed), or ``subsample`` distinct
    combinations drawn with ``seed`` (in grid order) without building the rest."""
    indices = np.arange(N_IMAGES, dtype=np.int64) if subsample is None else _draw(N_IMAGES, subsample, seed)
    factors = factors_of(indices)
    return DSprites(render(factors), factors, values_of(factors))


def read_original(path: PathLike, subsample: int | None = None, seed: int = 0) -> DSprites:
    """Read DeepMind's ``.npz`` (or a file laid out like it) without unpickling anything.

    Only the arrays ``imgs`` (uint8 0/1, ``(n, 64, 64)``), ``latents_classes`` (integers ``(n, 6)``)
    and ``latents_values`` (floats ``(n, 6)``) are read, with ``allow_pickle=False``; the pickled
    ``metadata`` is never opened. The images are decompressed in chunks and packed, so the 3 GB of
    the original are never held. ``subsample`` keeps rows drawn as :func:`generate` draws them, so
    for the original file (in grid order) both pick the same combinations.

    Raises
    ------
    DataFileError
        (a ValueError) naming the file and the problem: not an npz archive, a missing entry, or a
        shape, dtype or value that does not match the layout above.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    _check_subsample(subsample)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataFileError(path, "expected an .npz archive, found a single .npy array")
            missing = [key for key in _ORIGINAL_KEYS if key not in archive.files]
            if missing:
                raise DataFileError(
                    path, f"no array named {', '.join(map(repr, missing))}; the archive holds "
                          f"{sorted(archive.files)}, a dSprites file {list(_ORIGINAL_KEYS)} and metadata"
                )
            classes = archive["latents_classes"]
            values = archive["latents_values"]
            n = _check_latents(path, classes, values)
            if subsample is not None and subsample > n:
                raise DataFileError(path, f"holds {n} images, fewer than subsample={subsample}")
            rows = None if subsample is None else _draw(n, subsample, seed)
            packed = _read_packed_images(path, archive, n, rows)
    except DataFileError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError, zlib.error) as err:
        raise DataFileError(path, f"cannot read it as a dSprites .npz: {err}") from err
    if rows is not None:
        classes, values = classes[rows], values[rows]
    return DSprites(packed, np.ascontiguousarray(classes[:, 1:], dtype=np.int64),
                    np.ascontiguousarray(values[:, 1:], dtype=np.float64), str(path))


def _check_latents(path: Path, classes: np.ndarray, values: np.ndarray) -> int:
    """Check the two latent tables and return their length."""
    for key, arr, kind in (("latents_classes", classes, np.integer), ("latents_values", values, np.floating)):
        if arr.ndim != 2 or arr.shape[1] != 6 or len(arr) == 0:
            raise DataFileError(path, f"{key}: expected shape (n, 6) with n >= 1, found {arr.shape}")
        if not np.issubdtype(arr.dtype, kind):
            raise DataFileError(path, f"{key}: expected {kind.__name__} values, found dtype {arr.dtype}")
    if len(classes) != len(values):
        raise DataFileError(path, f"latents_classes has {len(classes)} rows, latents_values {len(values)}")
    sizes = np.array((1, *FACTOR_SIZES))
    if (classes < 0).any() or (classes >= sizes).any():
        raise DataFileError(path, f"latents_classes: out of range for the factor sizes {tuple(sizes)}")
    if not np.isfinite(values).all():
        raise DataFileError(path, "latents_values: not all finite")
    return len(classes)


def _read_packed_images(path: Path, archive: Any, n: int, rows: np.ndarray | None) -> np.ndarray:
    """Stream ``imgs.npy`` out of the archive chunk by chunk, keeping the packed ``rows`` (all if None)."""
    image_bytes = IMAGE_SIZE * IMAGE_SIZE
    with archive.zip.open("imgs.npy") as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise DataFileError(path, f"imgs: unsupported .npy format version {version}")
        if shape != (n, IMAGE_SIZE, IMAGE_SIZE):
            raise DataFileError(path, f"imgs: expected shape ({n}, 64, 64) like the latents, found {shape}")
        if dtype != np.uint8:
            raise DataFileError(path, f"imgs: expected dtype uint8, found {dtype}")
        if fortran:
            raise DataFileError(path, "imgs: stored in Fortran order; expected C order, as the original")
        keep = np.arange(n) if rows is None else rows
        packed = np.empty((len(keep), IMAGE_SIZE, _ROW_BYTES), dtype=np.uint8)
        filled = 0
        for start in range(0, n, _READ_CHUNK):
            count = min(_READ_CHUNK, n - start)
            data = fp.read(count * image_bytes)
            if len(data) != count * image_bytes:
                ends = start + len(data) // image_bytes
                raise DataFileError(path, f"imgs: truncated, the data ends within image {ends}")
            chunk = np.frombuffer(data, dtype=np.uint8).reshape(count, IMAGE_SIZE, IMAGE_SIZE)
            if chunk.max(initial=0) > 1:
                raise DataFileError(path, f"imgs: expected values 0 and 1, found {int(chunk.max())}")
            lo, hi = np.searchsorted(keep, [start, start + count])  # keep is sorted
            wanted = keep[lo:hi] - start
            packed[filled:filled + len(wanted)] = np.packbits(chunk[wanted], axis=-1)
            filled += len(wanted)
    return packed


def find_original(data_dir: PathLike) -> Path | None:
    """The original file in ``data_dir`` or ``data_dir/dsprites``, or None."""
    for folder in (Path(data_dir), Path(data_dir) / "dsprites"):
        if (folder / ORIGINAL_FILE).is_file():
            return folder / ORIGINAL_FILE
    return None


def load(data_dir: PathLike | None = None, subsample: int | None = None, seed: int = 0) -> DSprites:
    """dSprites from the original file when ``data_dir`` (or its ``dsprites/``) holds it, else generated.

    ``result.source`` says which. ``subsample`` and ``seed`` pick the same combinations either way
    (for the original file in its grid order).
    """
    path = None if data_dir is None else find_original(data_dir)
    if path is not None:
        return read_original(path, subsample=subsample, seed=seed)
    return generate(subsample=subsample, seed=seed)
