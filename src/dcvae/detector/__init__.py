"""The detector: a scikit-learn estimator with PyOD's outlier-detector contract, on top of the core.

- ``estimator``: ``AnomalyDetector`` (fit, scores, flags, probabilities);
- ``config``: its own settings (``DetectorConfig``) and every setting's default;
- ``probability``: PyOD's probability and confidence of a score;
- ``files``: the detector as a model directory.
"""

from dcvae.detector.config import MODES, DetectorConfig, default_settings
from dcvae.detector.estimator import (
    EXPECTED_FAILED_CHECKS,
    AnomalyDetector,
    NotFittedError,
    expected_failed_checks,
)

__all__ = ["EXPECTED_FAILED_CHECKS", "MODES", "AnomalyDetector", "DetectorConfig", "NotFittedError",
           "default_settings", "expected_failed_checks"]
