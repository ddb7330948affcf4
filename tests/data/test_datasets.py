"""Datasets by name: real files (skipped when absent), the carve, and malformed inputs."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dcvae.data import (
    DATASETS,
    DataFileError,
    DatasetNotFoundError,
    DatasetSplits,
    FactorSplits,
    LabelledArray,
    dsprites,
    load_dataset,
    search,
    stratified_carve,
)
from dcvae.data.datasets import DSpritesDataset, IdxDataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def real(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    Callable[[str], DatasetSplits]
]:
    """Load real datasets from shared data only (empty cache/system roots), once each."""
    empty = tmp_path_factory.mktemp("empty")
    cache: dict[str, DatasetSplits] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search, "cache_dir", lambda: empty / "cache")
        mp.setattr(search, "SYSTEM_DATA_DIR", empty / "system")
        mp.delenv("DCVAE_DATA", raising=False)

        def load(name: str) -> DatasetSplits:
            if name not in cache:
                cache[name] = load_dataset(name, shared_data, download=False)
            return cache[name]

        yield load


def _counts(y: np.ndarray, k: int) -> list[int]:
    return np.bincount(y, minlength=k).tolist()


# ---------------------------------------------------------------- real files


def test_mnist(real: Callable[[str], DatasetSplits]) -> None:
    ds = real("mnist")
    assert (len(ds.train), len(ds.test)) == (60_000, 10_000)
    assert ds.train.x.dtype == np.uint8 and ds.train.x.shape == (60_000, 1, 28, 28)
    assert ds.train.y.dtype == np.int64
    assert _counts(ds.test.y, 10) == MNIST_TEST_COUNTS
    assert _counts(ds.train.y, 10) == MNIST_TRAIN_COUNTS
    assert ds.class_names == tuple("0123456789") and ds.notes == ()
    assert ds.is_image and ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.train.x.max() == 255 and ds.train.x.min() == 0


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fmnist_from_system_dir(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    monkeypatch.setattr(search, "SYSTEM_DATA_DIR", FASHION_DIR.parent)
    ds = load_dataset("fmnist", download=False)
    assert (len(ds.train), len(ds.test)) == (60_000, 10_000)
    assert _counts(ds.train.y, 10) == [6000] * 10 and _counts(ds.test.y, 10) == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[-1] == "Ankle boot"


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_debian_fashion_pixels_are_the_official_ones() -> None:
    """Debian re-gzipped the files; the uncompressed bytes match the published raw md5s."""
    published_raw_md5 = {
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    for name, md5 in published_raw_md5.items():
        raw = gzip.decompress((FASHION_DIR / name).read_bytes())
        assert hashlib.md5(raw).hexdigest() == md5, name


def test_kmnist_carved(real: Callable[[str], DatasetSplits], shared_data: Path) -> None:
    ds = real("kmnist")
    assert (len(ds.train), len(ds.test)) == (8_000, 2_000)
    assert _counts(ds.train.y, 10) == [800] * 10 and _counts(ds.test.y, 10) == [200] * 10
    assert ds.notes == (
        "kmnist: official train images not found (download disabled); the official test "
        "split (10,000 images) was carved into 8,000 train / 2,000 test, stratified by "
        "class, seed 0.",
    )
    assert ds.class_names == ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")
    again = load_dataset("kmnist", shared_data, download=False)  # the carve is deterministic
    np.testing.assert_array_equal(again.test.y, ds.test.y)
    np.testing.assert_array_equal(again.test.x, ds.test.x)


def test_kmnist_npz_and_idx_agree(
    real: Callable[[str], DatasetSplits], shared_data: Path, isolated: dict[str, Path],
    tmp_path: Path,
) -> None:
    only_npz = tmp_path / "npz"
    only_npz.mkdir()
    for name in ("kmnist-test-imgs.npz", "kmnist-test-labels.npz"):
        shutil.copy(shared_data / "kmnist" / name, only_npz / name)
    ds = load_dataset("kmnist", only_npz, download=False)
    ref = real("kmnist")
    np.testing.assert_array_equal(ds.test.x, ref.test.x)
    np.testing.assert_array_equal(ds.train.y, ref.train.y)
    assert ds.class_names == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


@pytest.fixture(scope="module")
def byclass(real: Callable[[str], DatasetSplits]) -> DatasetSplits:
    return real("emnist-byclass")


def test_emnist_byclass_carved(byclass: DatasetSplits) -> None:
    assert (len(byclass.train), len(byclass.test)) == (93_058, 23_265)
    assert byclass.num_classes == 62
    assert byclass.class_names[:11] == (*"0123456789", "A")
    assert byclass.class_names[36] == "a" and byclass.class_names[-1] == "z"
    assert byclass.train.x.dtype == np.uint8 and byclass.train.x.flags.c_contiguous
    assert len(np.unique(byclass.test.y)) == 62
    total = np.bincount(byclass.train.y, minlength=62) + np.bincount(byclass.test.y, minlength=62)
    frac = np.bincount(byclass.test.y, minlength=62) / total
    assert np.all(np.abs(frac - 0.2) < 0.02)
    assert "carved into 93,058 train / 23,265 test" in byclass.notes[0]


def test_emnist_upright(real: Callable[[str], DatasetSplits]) -> None:
    """After our transpose, EMNIST '1's look like MNIST '1's, not like their transposes."""
    em = real("emnist-mnist")
    mn = real("mnist")
    em_one = np.concatenate([em.train.x, em.test.x])[np.concatenate([em.train.y, em.test.y]) == 1]
    mean_em = em_one[:, 0].astype(np.float64).mean(axis=0)
    mean_mn = mn.test.x[mn.test.y == 1][:, 0].astype(np.float64).mean(axis=0)
    assert np.linalg.norm(mean_em - mean_mn) < 0.5 * np.linalg.norm(mean_em.T - mean_mn)


def test_emnist_mnist(real: Callable[[str], DatasetSplits]) -> None:
    ds = real("emnist-mnist")
    assert (len(ds.train), len(ds.test)) == (8_000, 2_000)
    assert _counts(ds.test.y, 10) == [200] * 10
    assert ds.class_names == tuple("0123456789")
    assert "emnist-mnist: official train images not found" in ds.notes[0]


@pytest.mark.parametrize("name", ["emnist-balanced", "emnist-letters", "emnist-digits"])
def test_emnist_without_test_images(
    name: str, shared_data: Path, isolated: dict[str, Path]
) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, shared_data, download=False)
    message = str(info.value)
    split = name.removeprefix("emnist-")
    assert f"{name}-test-images-idx3-ubyte.gz or {name}-test-images-idx3-ubyte: not found" in (
        message
    )
    assert f"found at {shared_data / 'emnist' / f'emnist-{split}-test-labels-idx1-ubyte.gz'}" in (
        message
    )
    assert "download disabled" in message
    for d in (shared_data / "emnist", shared_data, isolated["cache"], isolated["system"]):
        assert f"  {d}\n" in message
    assert info.value.missing[0] == f"{name}-train-images-idx3-ubyte.gz"
    assert "first14800" not in message  # the partial derived letters file is never used


def test_emnist_mapping_files_match_builtin_names(shared_data: Path) -> None:
    for name, spec in DATASETS.items():
        if isinstance(spec, IdxDataset) and spec.class_names_file and name.startswith("emnist"):
            assert (shared_data / "emnist" / spec.class_names_file).is_file()
            assert spec._names(shared_data) == spec.class_names, name


# ---------------------------------------------------------------- digits, registry


def test_digits() -> None:
    ds = load_dataset("digits")
    assert (len(ds.train), len(ds.test)) == (1_257, 540)
    assert ds.input_shape == (1, 8, 8) and ds.train.x.dtype == np.uint8
    assert ds.train.x.max() == 255
    assert set(np.unique(ds.train.x)) <= {round(v * 255 / 16) for v in range(17)}
    assert "carved into 1,257 train / 540 test" in ds.notes[0]


@pytest.mark.slow
def test_dsprites_by_name_is_a_seeded_subsample_carved_by_shape(tmp_path: Path) -> None:
    ds = load_dataset("dsprites", tmp_path)  # no original file there: generated
    assert (len(ds.train), len(ds.test)) == (48_000, 12_000)
    assert ds.input_shape == (1, 64, 64) and ds.train.x.dtype == np.uint8
    assert set(np.unique(ds.test.x[:500])) == {0, 255} and ds.class_names == ("square", "ellipse", "heart")
    counts = np.bincount(ds.train.y, minlength=3)
    assert counts.sum() == 48_000 and counts.min() > 0.32 * 48_000  # about a third each
    assert "generated by the published recipe" in ds.notes[0]


def test_dsprites_splits_carry_their_factors_row_for_row() -> None:
    ds = DSpritesDataset(subsample=900, seed=4).load()
    factors = ds.factors
    assert factors is not None and factors.names == dsprites.FACTOR_NAMES and factors.class_factor == 0
    for split, f in ((ds.train, factors.train), (ds.test, factors.test)):
        assert np.array_equal(f[:, 0], split.y)
        rendered = np.unpackbits(dsprites.render(f[:20]), axis=-1).reshape(-1, 1, 64, 64) * 255
        assert np.array_equal(rendered, split.x[:20])  # each row's factors draw its image
    assert DATASETS["dsprites"].factor_names == dsprites.FACTOR_NAMES
    assert all(not spec.factor_names for name, spec in DATASETS.items() if name != "dsprites")
    with pytest.raises(ValueError, match="factors must match"):
        DatasetSplits(ds.name, ds.train, ds.test, ds.class_names, factors=FactorSplits(
            factors.names, factors.train[::-1].copy(), factors.test, 0))


def test_registry_and_unknown_name() -> None:
    assert set(DATASETS) == {
        "mnist", "fmnist", "kmnist", "digits", "emnist-byclass", "emnist-bymerge",
        "emnist-balanced", "emnist-letters", "emnist-digits", "emnist-mnist", "dsprites",
    }
    assert all(spec.description for spec in DATASETS.values())
    with pytest.raises(ValueError, match=r"unknown dataset 'mnsit'\. Did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match="Known datasets: mnist, fmnist"):
        load_dataset("cifar10")


# ---------------------------------------------------------------- malformed files


@pytest.fixture
def mnist_dir(tmp_path: Path, make_idx: Callable[..., Path], isolated: dict[str, Path]
              ) -> Path:
    """Valid tiny 'mnist' test files (train missing) in tmp_path/data/mnist."""
    folder = tmp_path / "data" / "mnist"
    make_idx(np.zeros((20, 28, 28), np.uint8), "t10k-images-idx3-ubyte.gz", folder=folder)
    make_idx(np.repeat(np.arange(10, dtype=np.uint8), 2), "t10k-labels-idx1-ubyte.gz",
             folder=folder)
    return folder


def test_tiny_valid_mnist_is_carved(mnist_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset("mnist", mnist_dir.parent, download=False)
    assert len(ds.train) + len(ds.test) == 20


def test_label_count_mismatch(mnist_dir: Path, make_idx: Callable[..., Path]) -> None:
    make_idx(np.zeros(19, np.uint8), "t10k-labels-idx1-ubyte.gz", folder=mnist_dir)
    with pytest.raises(DataFileError, match="19 labels, but t10k-images-idx3-ubyte.gz holds 20"):
        load_dataset("mnist", mnist_dir.parent, download=False)


def test_label_out_of_range(mnist_dir: Path, make_idx: Callable[..., Path]) -> None:
    make_idx(np.full(20, 10, np.uint8), "t10k-labels-idx1-ubyte.gz", folder=mnist_dir)
    with pytest.raises(DataFileError, match=r"labels must lie in 0\.\.9 for mnist, found 10\.\.10"):
        load_dataset("mnist", mnist_dir.parent, download=False)


def test_wrong_image_shape(mnist_dir: Path, make_idx: Callable[..., Path]) -> None:
    make_idx(np.zeros((20, 32, 32), np.uint8), "t10k-images-idx3-ubyte.gz", folder=mnist_dir)
    with pytest.raises(DataFileError, match=r"expected uint8 images of shape \(n, 28, 28\), "
                       r"found uint8 \(20, 32, 32\)"):
        load_dataset("mnist", mnist_dir.parent, download=False)


def test_bad_mapping_file(tmp_path: Path, make_idx: Callable[..., Path],
                          isolated: dict[str, Path]) -> None:
    folder = tmp_path / "emnist"
    make_idx(np.zeros((20, 28, 28), np.uint8), "emnist-mnist-test-images-idx3-ubyte.gz",
             folder=folder)
    make_idx(np.repeat(np.arange(10, dtype=np.uint8), 2),
             "emnist-mnist-test-labels-idx1-ubyte.gz", folder=folder)
    (folder / "emnist-mnist-mapping.txt").write_text("0 48\n1 49\n")
    with pytest.raises(DataFileError, match=r"mapping\.txt: expected labels 0\.\.9"):
        load_dataset("emnist-mnist", tmp_path, download=False)


# ---------------------------------------------------------------- carve


def _split(y: np.ndarray) -> LabelledArray:
    x = np.arange(len(y), dtype=np.float32)[:, None]  # x encodes the original index
    return LabelledArray(x, y.astype(np.int64))


def test_carve_stratified_disjoint_deterministic_complete() -> None:
    y = np.repeat(np.arange(5), [50, 30, 20, 10, 90])
    data = _split(np.random.default_rng(3).permutation(y))
    train, test = stratified_carve(data, 0.2, seed=0)
    a = train.x[:, 0].astype(int)
    b = test.x[:, 0].astype(int)
    assert set(a).isdisjoint(b) and sorted([*a, *b]) == list(range(200))
    assert list(a) == sorted(a)  # original order kept
    assert _counts(test.y, 5) == [10, 6, 4, 2, 18]
    train2, test2 = stratified_carve(data, 0.2, seed=0)
    np.testing.assert_array_equal(test2.x, test.x)
    _, test3 = stratified_carve(data, 0.2, seed=1)
    assert not np.array_equal(test3.x, test.x)


def test_carve_singleton_class_goes_to_train() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2])
    train, test = stratified_carve(_split(y), 0.2, seed=0)
    assert 2 in train.y and 2 not in test.y
    assert len(train) + len(test) == 21 and _counts(test.y, 3) == [2, 2, 0]


def test_carve_unlabelled_and_too_few() -> None:
    train, test = stratified_carve(_split(np.full(10, -1)), 0.3, seed=0)
    assert (len(train), len(test)) == (7, 3)
    with pytest.warns(UserWarning, match="without stratification"):
        train, test = stratified_carve(_split(np.arange(6) % 3), 0.2, seed=0)
    assert len(train) + len(test) == 6 and len(test) >= 1
    with pytest.raises(ValueError, match="cannot carve 1 sample"):
        stratified_carve(_split(np.zeros(1)), 0.2, seed=0)
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        stratified_carve(_split(np.zeros(10)), 1.0, seed=0)
