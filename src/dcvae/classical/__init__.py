"""Classical detectors, first-class rows beside the VAEs: ``knn``, ``pca``, ``pca-gauss``, ``iforest``
and ``ecod`` (PyOD). Built on scikit-learn and PyOD; see ``base`` for what they share."""

from dcvae.classical import ecod, knn, pca, trees  # noqa: F401  (each registers its detectors)
from dcvae.classical.base import CLASSICAL, ClassicalConfig, ClassicalModel, classical_class

__all__ = ["CLASSICAL", "ClassicalConfig", "ClassicalModel", "classical_class"]
