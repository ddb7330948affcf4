"""Anomaly maps: where a sample is odd, per pixel, and how the map adds up to the recon score."""

import numpy as np
import pytest

from dcvae.data import load_dataset
from dcvae.detector import AnomalyDetector

SMALL = {"hidden_dims": (32, 16), "latent_dim": 4, "progress": False}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module", params=["vae", "dcvae"])
def detector(request, digits):
    c = digits.train.y if request.param == "dcvae" else None
    return AnomalyDetector(request.param, latent_dim=8, epochs=40, patience=0, anomaly_score="recon",
                           progress=False).fit(digits.train.x, c=c)


def test_the_map_adds_up_to_the_recon_score(detector, digits):
    x = digits.test.x[:40]
    maps = detector.anomaly_map(x)
    assert maps.shape == (40, 1, 8, 8) and maps.dtype == np.float32 and (maps >= 0).all()
    np.testing.assert_allclose(np.sqrt(maps.reshape(40, -1).sum(1)), detector.decision_function(x), rtol=1e-4)
    if detector.model_.conditional:  # given mode: the map of the condition asked for
        given = detector.anomaly_map(x, digits.test.y[:40])
        np.testing.assert_allclose(np.sqrt(given.reshape(40, -1).sum(1)),
                                   detector.decision_function(x, digits.test.y[:40]), rtol=1e-4)


def test_the_map_points_at_a_planted_defect(detector, digits):
    """A bright 2x2 square stamped on a dark corner of normal digits is where their maps light up."""
    clean = digits.test.x[:300][digits.test.x[:300, 0, :2, :2].max(axis=(1, 2)) == 0]
    stamped = clean.copy()
    stamped[:, 0, :2, :2] = 255
    before, after = detector.anomaly_map(clean)[:, 0], detector.anomaly_map(stamped)[:, 0]
    corner = (slice(None), slice(0, 2), slice(0, 2))
    assert len(clean) >= 20
    assert np.median(after[corner].sum(axis=(1, 2)) / before[corner].sum(axis=(1, 2))) > 5
    hottest = np.unravel_index(after.mean(axis=0).argmax(), (8, 8))  # the mean map peaks in the corner
    assert hottest[0] < 2 and hottest[1] < 2, hottest


def test_tables_and_classical_detectors(digits):
    rng = np.random.default_rng(0)
    table = rng.normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
    det = AnomalyDetector("vae", epochs=2, anomaly_score="recon", **SMALL).fit(table)
    maps = det.anomaly_map(table[:10])
    assert maps.shape == (10, 5)
    np.testing.assert_allclose(np.sqrt(maps.sum(1)), det.decision_function(table[:10]), rtol=1e-4)
    knn = AnomalyDetector("knn", progress=False).fit(table)
    with pytest.raises(ValueError, match="classical detector"):
        knn.anomaly_map(table[:3])
