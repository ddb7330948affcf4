"""The user's own data: image folders and array files, built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcvae.data import DataFileError, LabelledArray, load_array_file, load_image_folder


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


def test_npy_tabular_and_images(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(12, dtype=np.float64).reshape(4, 3))
    data, names = load_array_file(tmp_path / "t.npy")
    assert data.x.dtype == np.float32 and data.x.shape == (4, 3)
    assert names == () and data.y.tolist() == [-1] * 4

    np.save(tmp_path / "i.npy", np.zeros((5, 7, 8), np.uint8))
    data, _ = load_array_file(tmp_path / "i.npy")
    assert data.x.shape == (5, 1, 7, 8) and data.x.dtype == np.uint8

    np.save(tmp_path / "f.npy", np.full((2, 3, 4, 4), 0.5, np.float32))
    data, _ = load_array_file(tmp_path / "f.npy")
    assert data.x.dtype == np.uint8 and np.all(data.x == 128)


def test_npy_condition_column(tmp_path: Path) -> None:
    arr = np.array([[1.0, 10, 2], [2.0, 9, 1], [3.0, 10, 2]])
    np.save(tmp_path / "c.npy", arr)
    data, names = load_array_file(tmp_path / "c.npy", condition_column=1)
    assert names == ("9", "10")  # numeric conditions order numerically
    assert data.y.tolist() == [1, 0, 1] and data.x.shape == (3, 2)


def test_npz_with_conditions(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 4))
    np.savez(tmp_path / "a.npz", x=x, c=np.array(["b", "a", "b", "c", "a", "a"]))
    data, names = load_array_file(tmp_path / "a.npz")
    assert names == ("a", "b", "c") and data.y.tolist() == [1, 0, 1, 2, 0, 0]
    np.testing.assert_allclose(data.x, x.astype(np.float32))

    np.savez(tmp_path / "only.npz", np.zeros((3, 2)))
    data, names = load_array_file(tmp_path / "only.npz")
    assert data.x.shape == (3, 2) and names == ()

    np.savez(tmp_path / "y.npz", features=np.zeros((3, 2)), y=np.array([2, 0, 2]))
    data, names = load_array_file(tmp_path / "y.npz")
    assert names == ("0", "2") and data.y.tolist() == [1, 0, 1]

    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"two\.npz: cannot tell which array"):
        load_array_file(tmp_path / "two.npz")

    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2)), c=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"one value per sample \(3\)"):
        load_array_file(tmp_path / "len.npz")


def test_csv_with_header_and_condition(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("f1,group,f2\n1.5,b,2\n-3,a,4e-1\n0,b,7\n\n")
    data, names = load_array_file(path, condition_column="group")
    assert names == ("a", "b") and data.y.tolist() == [1, 0, 1]
    np.testing.assert_allclose(data.x, [[1.5, 2], [-3, 0.4], [0, 7]])
    same, _ = load_array_file(path, condition_column=1)
    np.testing.assert_array_equal(same.y, data.y)


def test_csv_without_header_or_condition(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("1,2\n3,4\n")
    data, names = load_array_file(path)
    assert data.x.tolist() == [[1, 2], [3, 4]] and names == ()
    labelled = tmp_path / "lab.csv"
    labelled.write_text("x,0.5,1\ny,0.25,2\n")  # string first column, no header
    data, names = load_array_file(labelled, condition_column=0)
    assert names == ("x", "y") and len(data) == 2
    with pytest.raises(ValueError, match="no header row"):
        load_array_file(path, condition_column="group")


def test_csv_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row 3, column 'b': .* found 'oops'"):
        load_array_file(path)
    path.write_text("a,b\n1,2\n3,\n")
    with pytest.raises(ValueError, match=r"row 3, column 'b'.*found ''"):
        load_array_file(path)
    path.write_text("a,b\n1,2\n3,nan\n")
    with pytest.raises(ValueError, match=r"row 3, column 'b'.*found 'nan'"):
        load_array_file(path)
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=r"row 3 has 1 columns, expected 2"):
        load_array_file(path)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no column 'c'; columns are \['a', 'b'\]"):
        load_array_file(path, condition_column="c")


def test_array_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_array_file(tmp_path / "missing.npy")
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unsupported file type '\.parquet'"):
        load_array_file(tmp_path / "x.parquet")
    np.save(tmp_path / "r1.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"found 1-D shape \(5,\)"):
        load_array_file(tmp_path / "r1.npy")
    np.save(tmp_path / "r5.npy", np.zeros((1, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="found 5-D"):
        load_array_file(tmp_path / "r5.npy")
    np.save(tmp_path / "nhwc.npy", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="looks channels-last"):
        load_array_file(tmp_path / "nhwc.npy")
    np.save(tmp_path / "big.npy", np.full((2, 4, 4), 2.0))
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        load_array_file(tmp_path / "big.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"non-finite value\(s\), first at index \(0, 1\)"):
        load_array_file(tmp_path / "nan.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match=r"obj\.npy"):
        load_array_file(tmp_path / "obj.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataFileError, match=r"junk\.npz"):
        load_array_file(tmp_path / "junk.npz")


# ---------------------------------------------------------------- containers


def test_labelled_array_validation() -> None:
    ok = LabelledArray(np.zeros((3, 1, 2, 2), np.uint8), np.zeros(3, np.int64))
    assert len(ok) == 3 and len(ok.subset(np.array([0, 2]))) == 2
    assert len(ok.subset(np.array([True, False, True]))) == 2
    with pytest.raises(ValueError, match="index must be 1-D"):
        ok.subset(np.array(1))
    with pytest.raises(ValueError, match="differ in length"):
        LabelledArray(np.zeros((3, 2), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="y must be int64"):
        LabelledArray(np.zeros((3, 2), np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="uint8 images"):
        LabelledArray(np.zeros((3, 1, 2, 2), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels must be >= -1"):
        LabelledArray(np.zeros((1, 2), np.float32), np.array([-2]))
