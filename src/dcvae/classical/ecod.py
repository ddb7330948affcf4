"""ECOD (PyOD, an optional extra): tail probabilities from each feature's empirical distribution."""

from __future__ import annotations

import numpy as np

from dcvae.classical.base import ClassicalModel, register_classical


@register_classical
class ECOD(ClassicalModel):
    """ECOD: empirical-CDF outlier detection (Li et al. 2022), PyOD's; pip install 'dcvae[pyod]'.

    As in PyOD, the scored batch joins the training data in the empirical distributions, so a
    sample's score depends slightly on the others scored with it."""

    name = "ecod"
    scores = ("ecod",)

    def _fit(self, features: np.ndarray, c: np.ndarray) -> None:
        try:
            from pyod.models.ecod import ECOD as PyODECOD
        except ImportError:
            raise ImportError("the ecod model needs PyOD: pip install 'dcvae[pyod]'") from None
        self.ecod = PyODECOD().fit(features)

    def _score(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return {"ecod": self.ecod.decision_function(features).astype(np.float64)[:, None]}
