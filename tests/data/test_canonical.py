"""The one input rule (dcvae.data.canonical): each canonical form, and each refusal named."""

import numpy as np
import pytest
import torch

from dcvae.data import InputError, canonical_inputs, in_unit_interval


def test_images_keep_uint8_and_gain_a_channel():
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    out = canonical_inputs(x)
    assert out.dtype == np.uint8 and out.shape == (2, 1, 4, 4)
    assert np.shares_memory(out, x)  # no copy of a large image set


def test_float_images_stay_float_and_are_never_rounded():
    x = np.full((3, 1, 4, 4), 0.5004, dtype=np.float64)
    out = canonical_inputs(x)
    assert out.dtype == np.float32 and np.allclose(out, 0.5004)


def test_other_integers_and_booleans():
    assert canonical_inputs(np.full((2, 3, 3), 255, np.int64)).dtype == np.uint8
    binary = canonical_inputs(np.array([[[True, False]]] * 2))
    assert binary.dtype == np.uint8 and binary.max() == 255 and binary.min() == 0  # binary images
    table = canonical_inputs(np.array([[True, False], [False, True]]))
    assert table.dtype == np.float32 and table.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert canonical_inputs(np.array([[1, 2], [3, 4]], np.int16)).dtype == np.float32


def test_numbers_held_as_objects_tensors_and_lists_are_read_as_numbers():
    assert canonical_inputs(np.array([[1, 2.5]], dtype=object)).dtype == np.float32
    assert canonical_inputs(torch.zeros(2, 1, 3, 3, dtype=torch.uint8)).dtype == np.uint8
    assert canonical_inputs([[0.1, 0.2], [0.3, 0.4]]).shape == (2, 2)


@pytest.mark.parametrize("x,error,message", [
    (np.zeros(4), ValueError, r"got 1-D shape \(4,\)\. Reshape your data"),
    (np.zeros((2, 1, 1, 3, 3)), ValueError, "got 5-D shape"),
    (np.zeros((0, 3)), ValueError, "it has 0 samples"),
    (np.zeros((3, 0)), ValueError, r"0 feature\(s\) \(shape=\(3, 0\)\)"),
    (np.zeros((2, 8, 8, 3), np.uint8), ValueError, r"looks channels-last .* x\.transpose\(0, 3, 1, 2\)"),
    (np.full((2, 1, 2, 2), 1.5), ValueError, r"float images must lie in \[0, 1\], found 1.5..1.5"),
    (np.full((2, 1, 2, 2), 256), ValueError, "integer images must lie in 0-255, found 256..256"),
    (np.array([[1.0, np.nan]]), ValueError, r"1 NaN or infinite values \(first at index \(0, 1\)\)"),
    (np.array([[1e39, 0.0]]), ValueError, "too large for float32"),
    (np.array([[1 + 2j]]), ValueError, "Complex data not supported"),
    (np.array([["a", "b"]]), ValueError, "must be numeric"),
    (np.array([[1, {"k": 1}]], dtype=object), InputError, "holds a value that is not a number"),
    ([[1.0, 2.0], [3.0]], ValueError, "cannot be read as an array"),
])
def test_refusals_name_the_problem(x, error, message):
    with pytest.raises(error, match=message):
        canonical_inputs(x, name="X")


def test_a_sparse_matrix_is_refused_as_scikit_learn_does():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse matrix, but dense data is required"):
        canonical_inputs(sparse.csr_matrix(np.eye(3)))


def test_the_unit_interval():
    assert in_unit_interval(np.array([[0, 255]], np.uint8))
    assert in_unit_interval(np.array([[0.0, 1.0]], np.float32))
    assert not in_unit_interval(np.array([[0.0, 1.5]], np.float32))
