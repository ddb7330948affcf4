"""dSprites: the generated grid (order, factors, pixels, pinned checksums) and the original file's reader."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from dcvae.data import DataFileError, LabelledArray
from dcvae.data import dsprites as ds
from dcvae.data.dsprites import FACTOR_SIZES, FACTOR_VALUES, N_IMAGES, ORIGINAL_FILE

SAMPLE_SHA256 = "b74f8f32aa9529e3b5039a41328f6c96d2565e55828f4fc52e4b2c632d2a454a"
FULL_SHA256 = "6781bcf7f76b79b2fb6522e59ceb5fc95f294462f63c6de4021a5df8f1cc83a0"
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)


def lit(packed: np.ndarray) -> np.ndarray:
    """Lit pixels of each packed image."""
    return POPCOUNT[packed].reshape(len(packed), -1).sum(axis=1)


def grid(**fixed: int | np.ndarray) -> np.ndarray:
    """Factor rows of every combination of the factors not fixed (row-major), the others fixed."""
    names = zip(ds.FACTOR_NAMES, FACTOR_SIZES, strict=True)
    axes = [np.atleast_1d(fixed.get(name, np.arange(size))) for name, size in names]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int64)


@pytest.fixture(scope="module")
def sample() -> ds.DSprites:
    return ds.generate(subsample=2000, seed=0)


# --- the factor grid -----------------------------------------------------------------------------

@pytest.mark.parametrize(("index", "factors"), [
    (0, (0, 0, 0, 0, 0)),
    (1, (0, 0, 0, 0, 1)),  # posY varies fastest, as in the original
    (32, (0, 0, 0, 1, 0)),
    (1024, (0, 0, 1, 0, 0)),
    (40 * 1024, (0, 1, 0, 0, 0)),
    (6 * 40 * 1024, (1, 0, 0, 0, 0)),
    (N_IMAGES - 1, (2, 5, 39, 31, 31)),
])
def test_index_order_is_the_originals_row_major_layout(index: int, factors: tuple[int, ...]) -> None:
    assert ds.factors_of([index]).tolist() == [list(factors)]
    assert ds.index_of([factors]).tolist() == [index]


def test_factor_values_are_the_originals() -> None:
    values = ds.values_of([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 2, 13, 5, 20]])
    np.testing.assert_allclose(values[0], [1.0, 0.5, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(values[1], [3.0, 1.0, 2 * np.pi, 1.0, 1.0])
    np.testing.assert_allclose(values[2], [2.0, 0.7, 2 * np.pi / 3, 5 / 31, 20 / 31])


def test_subsample_is_distinct_valid_combinations_in_grid_order(sample: ds.DSprites) -> None:
    assert len(sample) == 2000 and sample.source == "generated"
    idx = sample.indices
    assert len(np.unique(idx)) == 2000 and (np.diff(idx) > 0).all()
    assert idx.min() >= 0 and idx.max() < N_IMAGES
    np.testing.assert_array_equal(sample.factors, np.stack(np.unravel_index(idx, FACTOR_SIZES), axis=1))
    assert ((sample.factors >= 0) & (sample.factors < np.array(FACTOR_SIZES))).all()
    for k, values in enumerate(FACTOR_VALUES):
        np.testing.assert_array_equal(sample.factor_values[:, k], values[sample.factors[:, k]])
    assert sample.factors.dtype == np.int64 and sample.factor_values.dtype == np.float64


def test_result_object(sample: ds.DSprites) -> None:
    assert sample.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert sample.factor_sizes == (3, 6, 40, 32, 32)
    assert sample.class_names == ("square", "ellipse", "heart")
    np.testing.assert_array_equal(sample.classes, sample.factors[:, 0])
    assert sample.packed.shape == (2000, 64, 8) and sample.packed.dtype == np.uint8
    assert sample.nbytes == 2000 * (512 + 2 * 40)
    images = sample.images([3, 1])
    assert images.shape == (2, 1, 64, 64) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0] // 255, np.unpackbits(sample.packed[[3, 1]], axis=-1))
    labelled = sample.labelled(slice(0, 10))
    assert isinstance(labelled, LabelledArray) and labelled.x.shape == (10, 1, 64, 64)
    np.testing.assert_array_equal(labelled.y, sample.classes[:10])
    part = sample.subset(np.array([5, 7]))
    np.testing.assert_array_equal(part.packed, sample.packed[[5, 7]])
    np.testing.assert_array_equal(part.indices, sample.indices[[5, 7]])
    with pytest.raises(AttributeError):
        sample.source = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("subsample", "error"), [(0, ValueError), (N_IMAGES + 1, ValueError),
                                                  (True, TypeError), (10.0, TypeError)])
def test_bad_subsample_refused(subsample: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="subsample"):
        ds.generate(subsample=subsample)  # type: ignore[arg-type]


# --- pixels --------------------------------------------------------------------------------------

def test_images_are_binary_nonempty_and_off_the_border(sample: ds.DSprites) -> None:
    images = sample.images()
    assert set(np.unique(images).tolist()) == {0, 255}
    assert (images.reshape(len(images), -1).max(axis=1) == 255).all()
    counts = lit(sample.packed)
    assert counts.min() >= 50 and counts.max() <= 31 * 31
    pixels = images[:, 0]
    border = np.concatenate([pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1)
    assert not border.any()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_sprite_keeps_its_pixels_at_every_position(shape: int) -> None:
    """No position cuts the sprite at the canvas edge: the count is the same at all 1024."""
    factors = grid(shape=shape, scale=5, orientation=np.array([0, 7, 13, 29]))
    counts = lit(ds.render(factors)).reshape(4, 32 * 32)
    assert (counts == counts[:, :1]).all()
    tiles = [ds.render_sprite(shape, 1.0, FACTOR_VALUES[2][o]).sum() for o in (0, 7, 13, 29)]
    np.testing.assert_array_equal(counts[:, 0], tiles)


def test_larger_scale_lights_more_pixels() -> None:
    counts = lit(ds.render(grid(posX=0, posY=0))).reshape(3, 6, 40)
    assert (np.diff(counts, axis=1) > 0).all()


def test_quarter_turn_leaves_a_square_but_not_an_ellipse() -> None:
    for scale in FACTOR_VALUES[1]:
        for angle in FACTOR_VALUES[2][::3]:
            square = ds.render_sprite(0, scale, angle)
            assert (square ^ ds.render_sprite(0, scale, angle + np.pi / 2)).sum() <= 4
            assert (square ^ np.rot90(square)).sum() <= 4
            ellipse = ds.render_sprite(1, scale, angle)
            assert (ellipse ^ ds.render_sprite(1, scale, angle + np.pi / 2)).sum() > 20


@pytest.mark.parametrize("axis", ["posX", "posY"])
def test_positions_move_the_centre_of_mass(axis: str) -> None:
    other = "posY" if axis == "posX" else "posX"
    factors = grid(shape=2, scale=3, orientation=5, **{other: 10})
    pixels = np.unpackbits(ds.render(factors), axis=-1).astype(float)
    rows, cols = np.indices((64, 64))
    mass = pixels.sum(axis=(1, 2))
    com_x = (pixels * cols).sum(axis=(1, 2)) / mass
    com_y = (pixels * rows).sum(axis=(1, 2)) / mass
    moving, still = (com_x, com_y) if axis == "posX" else (com_y, com_x)
    np.testing.assert_allclose(np.diff(moving), 1.0)  # whole-pixel steps, left to right / top to bottom
    np.testing.assert_allclose(still, still[0])


def test_no_pixel_centre_lies_on_an_outline() -> None:
    """Outlines nudged by 1e-9 (size or angle) light the same pixels, so ulp-level differences in
    sin/cos between platforms cannot change a pixel, nor the checksums below."""
    reference = ds._grid_tiles()
    for inflate, turn in [(1 + 1e-9, 0.0), (1 - 1e-9, 0.0), (1.0, 1e-9), (1.0, -1e-9)]:
        np.testing.assert_array_equal(ds._grid_tiles(inflate, turn), reference)


def test_no_sprite_is_clipped_by_its_tile() -> None:
    """The tile's outer ring stays dark: every sprite lies wholly inside the 31 x 31 tile it is drawn in
    (the position tests above cannot see a sprite cut the same way everywhere)."""
    tiles = ds._grid_tiles()
    ring = np.concatenate([tiles[:, 0], tiles[:, -1], tiles[:, :, 0], tiles[:, :, -1]], axis=1)
    assert not ring.any()
    assert tiles[:, 1].any()  # yet the largest sprites come close to it


def test_render_sprite_is_the_grid_sprite() -> None:
    tiles = ds._grid_tiles().reshape(3, 6, 40, 31, 31)
    for shape, scale, orientation in [(0, 0, 0), (1, 3, 17), (2, 5, 39), (2, 1, 8)]:
        np.testing.assert_array_equal(
            ds.render_sprite(shape, FACTOR_VALUES[1][scale], FACTOR_VALUES[2][orientation]),
            tiles[shape, scale, orientation],
        )


# --- determinism and pinned pixels ---------------------------------------------------------------

def test_checksum_of_a_seeded_subsample(sample: ds.DSprites) -> None:
    """Pins the rendering: the sha256 of the packed bytes of 2,000 combinations drawn with seed 0.

    A change to the outlines, the rasterisation, the position mapping, the packing or the seeded
    draw changes this hash; update it only on purpose (and say so in the CHANGELOG).
    """
    assert hashlib.sha256(sample.packed.tobytes()).hexdigest() == SAMPLE_SHA256


def test_subsample_is_deterministic(sample: ds.DSprites) -> None:
    again = ds.generate(subsample=2000, seed=0)
    np.testing.assert_array_equal(again.indices, sample.indices)
    assert again.packed.tobytes() == sample.packed.tobytes()
    other = ds.generate(subsample=2000, seed=1)
    assert not np.array_equal(other.indices, sample.indices)
    assert other.packed.tobytes() != sample.packed.tobytes()


def test_subsample_rows_are_the_full_sets_rows() -> None:
    """Each subsample image equals the full generation's image of its index, built here one at a
    time by pasting the sprite at its centre pixel (16 + posX, 16 + posY), without the full set."""
    sub = ds.generate(subsample=300, seed=5)
    for row, (shape, scale, orientation, pos_x, pos_y) in enumerate(sub.factors):
        canvas = np.zeros((64, 64), dtype=bool)
        tile = ds.render_sprite(int(shape), FACTOR_VALUES[1][scale], FACTOR_VALUES[2][orientation])
        canvas[1 + pos_y:32 + pos_y, 1 + pos_x:32 + pos_x] = tile
        np.testing.assert_array_equal(sub.packed[row], np.packbits(canvas, axis=-1), err_msg=f"row {row}")
    np.testing.assert_array_equal(ds.render(sub.factors[::7]), sub.packed[::7])


@pytest.mark.slow
def test_full_set() -> None:
    """The whole grid: every combination once in row-major order, sprites whole at every position,
    subsamples are its rows, and the sha256 of all packed bytes is pinned (as for the subsample)."""
    full = ds.generate()
    assert len(full) == N_IMAGES and full.packed.nbytes == N_IMAGES * 512
    np.testing.assert_array_equal(full.indices, np.arange(N_IMAGES))
    row_major = np.stack(np.unravel_index(np.arange(N_IMAGES), FACTOR_SIZES), axis=1)
    np.testing.assert_array_equal(full.factors, row_major)
    for k, size in enumerate(FACTOR_SIZES):
        np.testing.assert_array_equal(np.bincount(full.factors[:, k], minlength=size), N_IMAGES // size)
    counts = np.concatenate([lit(full.packed[i:i + 65536]) for i in range(0, N_IMAGES, 65536)])
    counts = counts.reshape(720, 1024)
    assert counts.min() > 0 and (counts == counts[:, :1]).all()
    sub = ds.generate(subsample=5000, seed=3)
    np.testing.assert_array_equal(sub.packed, full.packed[sub.indices])
    assert hashlib.sha256(full.packed.tobytes()).hexdigest() == FULL_SHA256


# --- the original file ---------------------------------------------------------------------------

class Trap:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def write_fake(path: Path, indices: np.ndarray, marker: Path | None = None, **replace: object) -> Path:
    """A small file laid out like the original (imgs 0/1, 6-column latents, pickled metadata)."""
    factors = ds.factors_of(indices)
    n = len(indices)
    arrays: dict[str, object] = {
        "imgs": np.unpackbits(ds.render(factors), axis=-1),
        "latents_classes": np.hstack([np.zeros((n, 1), np.int64), factors]),
        "latents_values": np.hstack([np.ones((n, 1)), ds.values_of(factors)]),
        "metadata": np.array(Trap(marker or path.with_suffix(".unpickled")), dtype=object),
    }
    arrays.update(replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


FAKE_INDICES = np.sort(np.random.default_rng(1).choice(N_IMAGES, size=50, replace=False))


def test_read_original_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "unpickled"
    path = write_fake(tmp_path / ORIGINAL_FILE, FAKE_INDICES, marker)
    monkeypatch.setattr(ds, "_READ_CHUNK", 7)  # several chunks, the last one short
    data = ds.read_original(path)
    assert not marker.exists()
    assert data.source == str(path) and len(data) == 50
    np.testing.assert_array_equal(data.packed, ds.render(ds.factors_of(FAKE_INDICES)))
    np.testing.assert_array_equal(data.indices, FAKE_INDICES)
    np.testing.assert_array_equal(data.factor_values, ds.values_of(ds.factors_of(FAKE_INDICES)))
    part = ds.read_original(path, subsample=9, seed=4)
    np.testing.assert_array_equal(part.packed, data.packed[ds._draw(50, 9, 4)])
    np.testing.assert_array_equal(part.factors, data.factors[ds._draw(50, 9, 4)])
    assert not marker.exists()
    # The trap is live: loading the metadata with pickles allowed does create the marker.
    with np.load(path, allow_pickle=True) as archive:
        archive["metadata"]
    assert marker.exists()


@pytest.mark.parametrize(("replace", "problem"), [
    ({"imgs": np.zeros((50, 32, 32), np.uint8)}, r"imgs: expected shape \(50, 64, 64\)"),
    ({"imgs": np.zeros((49, 64, 64), np.uint8)}, r"imgs: expected shape \(50, 64, 64\)"),
    ({"imgs": np.zeros((50, 64, 64), np.float32)}, "imgs: expected dtype uint8"),
    ({"imgs": np.full((50, 64, 64), 255, np.uint8)}, "expected values 0 and 1"),
    ({"latents_classes": None}, "no array named 'latents_classes'"),
    ({"imgs": None}, "no array named 'imgs'"),
    ({"latents_classes": np.zeros((50, 5), np.int64)}, r"latents_classes: expected shape \(n, 6\)"),
    ({"latents_classes": np.zeros((50, 6))}, "latents_classes: expected integer"),
    ({"latents_classes": np.full((50, 6), 3, np.int64)}, "latents_classes: out of range"),
    ({"latents_values": np.ones((40, 6))}, "latents_classes has 50 rows, latents_values 40"),
])
def test_bad_original_refused(tmp_path: Path, replace: dict[str, object], problem: str) -> None:
    path = write_fake(tmp_path / ORIGINAL_FILE, FAKE_INDICES, **replace)
    with pytest.raises(DataFileError, match=problem) as caught:
        ds.read_original(path)
    assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)


def test_pickled_latents_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    trap = np.array([Trap(marker)] * 6, dtype=object).reshape(1, 6)
    path = write_fake(tmp_path / ORIGINAL_FILE, FAKE_INDICES, marker, latents_values=trap)
    with pytest.raises(DataFileError, match=str(path)):
        ds.read_original(path)
    assert not marker.exists()


def test_not_an_archive_refused(tmp_path: Path) -> None:
    path = tmp_path / ORIGINAL_FILE
    path.write_bytes(pickle.dumps(Trap(tmp_path / "unpickled")))
    with pytest.raises(DataFileError, match=str(path)):
        ds.read_original(path)
    assert not (tmp_path / "unpickled").exists()
    with pytest.raises(FileNotFoundError):
        ds.read_original(tmp_path / "absent.npz")


@pytest.mark.parametrize("folder", [".", "dsprites"])
def test_load_prefers_the_original_file(tmp_path: Path, folder: str) -> None:
    path = write_fake(tmp_path / folder / ORIGINAL_FILE, FAKE_INDICES)
    data = ds.load(tmp_path, subsample=10, seed=2)
    assert data.source == str(path) and len(data) == 10
    np.testing.assert_array_equal(data.indices, FAKE_INDICES[ds._draw(50, 10, 2)])


def test_load_generates_without_the_file(tmp_path: Path) -> None:
    for data_dir in (tmp_path, None):
        data = ds.load(data_dir, subsample=10, seed=2)
        assert data.source == "generated"
        np.testing.assert_array_equal(data.packed, ds.generate(subsample=10, seed=2).packed)
