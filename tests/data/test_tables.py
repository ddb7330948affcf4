"""Array files (dcvae.data.tables): .npy, .npz and .csv, with and without conditions, built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcvae.data import DataFileError, LabelledArray, load_array_file


def test_npy_tabular_and_images(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(12, dtype=np.float64).reshape(4, 3))
    data, names = load_array_file(tmp_path / "t.npy")
    assert data.x.dtype == np.float32 and data.x.shape == (4, 3)
    assert names == () and data.y.tolist() == [-1] * 4

    np.save(tmp_path / "i.npy", np.zeros((5, 7, 8), np.uint8))
    data, _ = load_array_file(tmp_path / "i.npy")
    assert data.x.shape == (5, 1, 7, 8) and data.x.dtype == np.uint8

    # float images keep their values: the same as the API takes them (0.5 is not rounded to 128)
    np.save(tmp_path / "f.npy", np.full((2, 3, 4, 4), 0.5, np.float64))
    data, _ = load_array_file(tmp_path / "f.npy")
    assert data.x.dtype == np.float32 and np.all(data.x == 0.5)


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
    with pytest.raises(ValueError, match=r"one condition per sample \(3\)"):
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
    with pytest.raises(ValueError, match=r"got 1-D shape \(5,\)"):
        load_array_file(tmp_path / "r1.npy")
    np.save(tmp_path / "r5.npy", np.zeros((1, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="got 5-D"):
        load_array_file(tmp_path / "r5.npy")
    np.save(tmp_path / "nhwc.npy", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="looks channels-last"):
        load_array_file(tmp_path / "nhwc.npy")
    np.save(tmp_path / "big.npy", np.full((2, 4, 4), 2.0))
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        load_array_file(tmp_path / "big.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"1 NaN or infinite values \(first at index \(0, 1\)\)"):
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
    with pytest.raises(ValueError, match="uint8 or float32"):
        LabelledArray(np.zeros((3, 1, 2, 2), np.float64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="images"):
        LabelledArray(np.zeros((3, 2, 2), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels must be >= -1"):
        LabelledArray(np.zeros((1, 2), np.float32), np.array([-2]))

