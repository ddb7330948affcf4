"""The one stratified split (dcvae.data.split): stratified, seeded, and safe on rare labels."""

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from dcvae.data import stratified_split


def test_it_is_scikit_learns_stratified_split_with_sorted_indices():
    y = np.repeat(np.arange(4), [30, 20, 40, 10])
    train, test = stratified_split(y, train_size=0.8, seed=3)
    reference_train, _ = train_test_split(np.arange(len(y)), train_size=0.8, random_state=3, stratify=y)
    assert np.array_equal(train, np.sort(reference_train))
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(len(y)))
    assert np.bincount(y[test]).tolist() == [6, 4, 8, 2]


def test_a_count_and_a_test_fraction_are_taken_too():
    y = np.repeat(np.arange(3), 50)
    train, test = stratified_split(y, train_size=60, seed=0)
    assert len(train) == 60 and np.bincount(y[train]).tolist() == [20, 20, 20]
    train, test = stratified_split(y, test_size=0.2, seed=0)
    assert len(test) == 30


def test_a_label_seen_once_goes_to_train():
    y = np.r_[np.repeat([0, 1], 20), [2]]
    train, test = stratified_split(y, train_size=0.75, seed=0)
    assert 40 in train and 40 not in test
    assert np.bincount(y[test], minlength=3).tolist() == [5, 5, 0]


def test_too_few_samples_to_stratify_split_plainly_with_a_warning():
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    with pytest.warns(UserWarning, match="too few for a stratified split"):
        train, test = stratified_split(y, train_size=0.9, seed=0)
    assert len(train) + len(test) == 8 and len(test) >= 1
