"""Image folders (dcvae.data.images): layouts, modes, sizes and damaged files, built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcvae.data import DataFileError, load_image_folder, read_image_folder


def _gray(path: Path, value: int, size: tuple[int, int] = (6, 4)) -> None:
    """Save a uniform grayscale image of (width, height) ``size``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def _rgb(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


# ---------------------------------------------------------------- image folders


def test_class_folders_grayscale(tmp_path: Path) -> None:
    _gray(tmp_path / "ok" / "a.png", 10)
    _gray(tmp_path / "ok" / "b.bmp", 20)
    _gray(tmp_path / "bad" / "c.png", 30)
    (tmp_path / "ok" / "notes.txt").write_text("not an image: ignored")
    data, names = load_image_folder(tmp_path)
    assert names == ("bad", "ok")
    assert data.x.shape == (3, 1, 4, 6) and data.x.dtype == np.uint8
    assert data.y.tolist() == [0, 1, 1]
    assert data.x[:, 0, 0, 0].tolist() == [30, 10, 20]


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    _gray(tmp_path / "a.png", 1)
    _gray(tmp_path / "b.png", 2)
    data, names = load_image_folder(tmp_path)
    assert names == () and data.y.tolist() == [-1, -1]


def test_auto_mode_rgb_when_any_image_is_colour(tmp_path: Path) -> None:
    _gray(tmp_path / "x" / "a.png", 100)
    _rgb(tmp_path / "y" / "b.jpg", (255, 0, 0))
    data, _ = load_image_folder(tmp_path)
    assert data.x.shape == (2, 3, 4, 6)
    assert data.x[0, :, 0, 0].tolist() == [100, 100, 100]
    r, g, b = data.x[1, :, 2, 3].tolist()
    assert r > 200 and g < 30 and b < 30  # JPEG is lossy


def test_forced_modes(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.png", (255, 0, 0))
    gray, _ = load_image_folder(tmp_path, mode="L")
    assert gray.x.shape == (1, 1, 4, 6) and gray.x[0, 0, 0, 0] == 76  # ITU-R 601-2 luma
    _gray(tmp_path / "b.png", 9)
    rgb, _ = load_image_folder(tmp_path, mode="RGB")
    assert rgb.x.shape == (2, 3, 4, 6)
    with pytest.raises(ValueError, match="mode must be"):
        load_image_folder(tmp_path, mode="CMYK")


def test_sixteen_bit_grayscale_is_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 6), 65535, np.uint16)).save(tmp_path / "wide.png")
    Image.fromarray(np.full((4, 6), 257 * 100, np.uint16)).save(tmp_path / "mid.png")
    data, _ = load_image_folder(tmp_path)
    assert data.x.shape[1] == 1
    assert sorted(data.x[:, 0, 0, 0].tolist()) == [100, 255]


def test_mixed_sizes_need_size(tmp_path: Path) -> None:
    _gray(tmp_path / "k" / "small.png", 50, size=(6, 4))
    _gray(tmp_path / "k" / "tall.png", 50, size=(5, 9))
    with pytest.raises(ValueError) as info:
        load_image_folder(tmp_path)
    message = str(info.value)
    assert "small.png is 4x6" in message and "tall.png is 9x5" in message
    assert "size=(height, width)" in message
    data, _ = load_image_folder(tmp_path, size=(8, 7))
    assert data.x.shape == (2, 1, 8, 7)
    assert np.all(data.x == 50)  # bilinear resize of a flat image stays flat
    with pytest.raises(ValueError, match="size must be"):
        load_image_folder(tmp_path, size=(0, 7))


def test_corrupt_image(tmp_path: Path) -> None:
    _gray(tmp_path / "c" / "good.png", 1)
    (tmp_path / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFileError, match=r"broken\.png"):
        load_image_folder(tmp_path)


def test_truncated_image(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "full.png")
    blob = (tmp_path / "full.png").read_bytes()
    (tmp_path / "full.png").unlink()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFileError, match=r"cut\.png"):
        load_image_folder(tmp_path)


def test_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path)
    _gray(tmp_path / "full" / "a.png", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: class folder holds no images"):
        load_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such image folder"):
        load_image_folder(tmp_path / "missing")


def test_mixed_layout_rejected(tmp_path: Path) -> None:
    _gray(tmp_path / "cls" / "a.png", 1)
    _gray(tmp_path / "loose.png", 1)
    with pytest.raises(ValueError, match="both class subfolders"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------- array files




@pytest.mark.parametrize("layout", ["class folders", "flat"])
@pytest.mark.parametrize("link", ["broken", "self-loop"])
def test_a_link_to_nothing_is_named_not_skipped(tmp_path: Path, layout: str, link: str) -> None:
    """(issue 15, item 22) A zero-byte image is refused; a broken link was skipped without a word."""
    folder = tmp_path / "c" if layout == "class folders" else tmp_path
    _gray(folder / "good.png", 1)
    bad = folder / "bad.png"
    bad.symlink_to(bad if link == "self-loop" else tmp_path / "gone.png")
    with pytest.raises(DataFileError, match=r"bad\.png.*target is missing or loops"):
        load_image_folder(tmp_path)


def test_a_link_to_an_image_is_read(tmp_path: Path) -> None:
    _gray(tmp_path / "store" / "real.png", 7)
    _gray(tmp_path / "data" / "a.png", 1)
    (tmp_path / "data" / "b.png").symlink_to(tmp_path / "store" / "real.png")
    data, _ = load_image_folder(tmp_path / "data")
    assert len(data) == 2 and int(data.x[1].max()) == 7


def test_unreadable_images_are_skipped_and_listed_when_asked(tmp_path: Path) -> None:
    for i in range(3):
        _gray(tmp_path / "a" / f"{i}.png", 10 * i)
    _gray(tmp_path / "b" / "good.png", 200)
    (tmp_path / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt
    (tmp_path / "b" / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken link
    folder = read_image_folder(tmp_path, skip_unreadable=True)
    assert [f.relative_to(tmp_path).as_posix() for f in folder.files] == ["a/0.png", "a/2.png", "b/good.png"]
    assert folder.data.x[:, 0, 0, 0].tolist() == [0, 20, 200]  # each row still its own file's pixels
    assert folder.names == ("a", "b") and folder.data.y.tolist() == [0, 0, 1]
    assert [Path(e.path).name for e in folder.skipped] == ["1.png", "gone.png"]
    assert "not a readable image" in folder.skipped[0].problem and "link" in folder.skipped[1].problem
    with pytest.raises(DataFileError, match=r"1\.png"):  # the default still refuses
        read_image_folder(tmp_path)
    for f in ("a/0.png", "a/2.png", "b/good.png"):
        (tmp_path / f).write_bytes(b"broken")
    with pytest.raises(DataFileError, match="none of its 5 images could be read"):
        read_image_folder(tmp_path, skip_unreadable=True)
