"""The protocols, traced sample by sample: anomalies never reach training or validation."""

import numpy as np
import pytest

from dcvae.data import DatasetSplits, LabelledArray
from dcvae.evaluation.protocols import PROTOCOLS, leave_one_out, make_protocol, one_class

TRAIN_COUNTS = [12, 10, 14, 8, 16]  # per class
TEST_COUNTS = [4, 5, 3, 6, 2]
NAMES = ("zero", "one", "two", "three", "four")
TEST_ID_OFFSET = 1000


def _split(counts, first_id):
    """(n, 1, 4, 4) uint8 images whose first two pixels encode a unique id, the third the class."""
    y = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    ids = first_id + np.arange(len(y))
    x = np.zeros((len(y), 1, 4, 4), dtype=np.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1], x[:, 0, 0, 2] = ids // 256, ids % 256, y
    order = np.random.default_rng(first_id).permutation(len(y))  # classes interleaved
    return LabelledArray(x[order], y[order])


def _ids(x):
    return x[:, 0, 0, 0].astype(int) * 256 + x[:, 0, 0, 1]


@pytest.fixture
def data():
    return DatasetSplits("toy", _split(TRAIN_COUNTS, 0), _split(TEST_COUNTS, TEST_ID_OFFSET), NAMES)


def _class_of(data):
    """id → original class, for every train and test sample."""
    out = {}
    for split in (data.train, data.test):
        out.update(zip(_ids(split.x).tolist(), split.y.tolist(), strict=True))
    return out


@pytest.mark.parametrize("k", range(5))
def test_leave_one_out_keeps_class_k_out_of_train_and_validation(data, k):
    split = leave_one_out(data, k)
    origin = _class_of(data)
    train_ids, val_ids = _ids(split.train.x), _ids(split.validation.x)
    assert all(origin[i] != k for i in train_ids)
    assert all(origin[i] != k for i in val_ids)
    normal_ids = set(_ids(data.train.x)[data.train.y != k].tolist())
    assert set(train_ids.tolist()) | set(val_ids.tolist()) == normal_ids
    assert not set(train_ids.tolist()) & set(val_ids.tolist())
    assert len(train_ids) + len(val_ids) == len(normal_ids)  # and no duplicates
    assert abs(len(val_ids) - 0.1 * len(normal_ids)) <= 1
    assert all(i < TEST_ID_OFFSET for i in [*train_ids, *val_ids])  # nothing from the test split


@pytest.mark.parametrize("k", [0, 2, 4])
def test_leave_one_out_renumbers_the_normal_classes_as_conditions(data, k):
    split = leave_one_out(data, k)
    kept = [name for i, name in enumerate(NAMES) if i != k]
    assert split.condition_names == tuple(kept)
    origin = _class_of(data)
    for part in (split.train, split.validation):
        assert set(part.y.tolist()) <= set(range(4))
        for i, cond in zip(_ids(part.x), part.y, strict=True):
            assert split.condition_names[cond] == NAMES[origin[i]]
    assert set(split.train.y.tolist()) == set(range(4))


@pytest.mark.parametrize("k", [1, 3])
def test_leave_one_out_tests_on_the_whole_test_split(data, k):
    split = leave_one_out(data, k)
    assert np.array_equal(split.test.x, data.test.x)
    origin = _class_of(data)
    expected = np.array([int(origin[i] == k) for i in _ids(split.test.x)])
    assert np.array_equal(split.test_labels, expected)
    assert split.test_labels.sum() == TEST_COUNTS[k]
    assert (split.protocol, split.target_class) == ("leave-one-out", k)


@pytest.mark.parametrize("k", [0, 3])
def test_one_class_trains_on_class_k_alone(data, k):
    split = one_class(data, k)
    origin = _class_of(data)
    train_ids, val_ids = _ids(split.train.x).tolist(), _ids(split.validation.x).tolist()
    assert {origin[i] for i in train_ids + val_ids} == {k}
    assert set(train_ids) | set(val_ids) == set(_ids(data.train.x)[data.train.y == k].tolist())
    assert not set(train_ids) & set(val_ids)
    assert split.condition_names == (NAMES[k],)
    assert not split.train.y.any() and not split.validation.y.any()
    assert np.array_equal(split.test.x, data.test.x)
    expected = np.array([int(origin[i] != k) for i in _ids(split.test.x)])
    assert np.array_equal(split.test_labels, expected)


def test_train_size_subsamples_the_normal_data_stratified(data):
    split = leave_one_out(data, 2, train_size=23)
    origin = _class_of(data)
    ids = np.concatenate([_ids(split.train.x), _ids(split.validation.x)])
    assert len(ids) == len(set(ids.tolist())) == 23
    classes = np.array([origin[i] for i in ids])
    assert 2 not in classes
    normal = [c for i, c in enumerate(TRAIN_COUNTS) if i != 2]  # 12, 10, 8, 16 of 46
    for cls, count in zip([0, 1, 3, 4], normal, strict=True):
        assert abs(np.sum(classes == cls) - count * 23 / 46) <= 1, cls


def test_train_size_at_or_above_the_normal_count_keeps_everything(data):
    split = leave_one_out(data, 2, train_size=1000)
    assert len(split.train) + len(split.validation) == sum(TRAIN_COUNTS) - TRAIN_COUNTS[2]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_the_seed_fixes_the_carve(data, protocol):
    def carve(seed):
        split = make_protocol(protocol, data, 4, seed=seed, train_size=30)
        return tuple(_ids(split.train.x).tolist()), tuple(_ids(split.validation.x).tolist())

    assert carve(0) == carve(0)
    assert len({carve(seed) for seed in range(4)}) > 1


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("k", [5, -1, 42])
def test_a_class_out_of_range_is_refused(data, protocol, k):
    with pytest.raises(ValueError, match=rf"class {k} does not exist in toy: classes are 0\.\.4"):
        make_protocol(protocol, data, k)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_class_without_samples_is_refused(protocol):
    train = _split([5, 5, 0], 0)
    test = _split([2, 2, 2], TEST_ID_OFFSET)
    data = DatasetSplits("toy", train, test, ("a", "b", "c"))
    with pytest.raises(ValueError, match=r"class 2 \(c\) has no samples in the train split of toy"):
        make_protocol(protocol, data, 2)


def test_unknown_protocol_and_bad_arguments_are_refused(data):
    message = r"unknown protocol 'leave-two-out'; choose one of \['leave-one-out', 'one-class'\]"
    with pytest.raises(ValueError, match=message):
        make_protocol("leave-two-out", data, 0)
    with pytest.raises(ValueError, match="validation_fraction"):
        leave_one_out(data, 0, validation_fraction=0.0)
    with pytest.raises(ValueError, match="train_size must be at least 2"):
        leave_one_out(data, 0, train_size=1)
