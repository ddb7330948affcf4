"""Hostile inputs at the detector API (fit, decision_function, predict): see tests/hostile.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hostile import (
    ACCEPTED,
    TABLE_WIDTH,
    TINY,
    _as_array,
    _condition_strategy,
    _judge,
    _settings,
    c_verdict,
    hostile_arrays,
    x_verdict,
)
from hypothesis import given
from hypothesis import strategies as st

from dcvae.detector import AnomalyDetector
from dcvae.training import TrainingDivergedError

pytestmark = pytest.mark.usefixtures("hostile_counts")  # fixtures: tests/conftest.py

# ------------------------------------------------------------------------------ 1. detector


IMAGE_SAMPLES = [(8, 8), (1, 8, 8), (3, 8, 8), (8, 8, 1), (64,), (1, 7, 7), (2, 1, 8, 8)]  # valid first
TABLE_SAMPLES = [(TABLE_WIDTH,), (TABLE_WIDTH,), (4,), (1, TABLE_WIDTH), (TABLE_WIDTH, 1)]


@_settings(500)
@given(data=st.data())
def test_scoring_hostile_inputs_refuses_clearly_or_scores_finitely(detectors, data):
    which = data.draw(st.sampled_from(sorted(detectors)), label="model")
    det = detectors[which]
    tabular = which == "vae-tabular"
    x = data.draw(hostile_arrays(TABLE_SAMPLES if tabular else IMAGE_SAMPLES), label="X")
    arr = _as_array(x)
    n = arr.shape[0] if arr is not None and arr.ndim >= 1 else 0
    c = data.draw(_condition_strategy(n), label="c")
    model = det.model_
    names = model.config.condition_names if model.conditional else None
    verdict = x_verdict(x, model.config.input_shape, bounded=not tabular)
    n_valid = n if not verdict.problems else None
    verdict = verdict.add(c_verdict(c, n_valid, names))
    predict = data.draw(st.booleans(), label="predict")
    call = (lambda: det.predict(x, c)) if predict else (lambda: det.decision_function(x, c))
    out = _judge(verdict, call, area="detector.score")
    if out is not None:
        assert isinstance(out, np.ndarray) and out.shape == (n,), out
        if predict:
            assert set(np.unique(out)) <= {0, 1}
        else:
            assert out.dtype == np.float64 and np.isfinite(out).all(), out


@_settings(100)
@given(data=st.data())
def test_fitting_hostile_inputs_refuses_clearly_or_trains(data):
    name = data.draw(st.sampled_from(["dcvae", "vae"]), label="model")
    small = data.draw(st.sampled_from([[(3,), (2, 2), (1, 3, 3)], [(1, 3, 3), (3,), (3, 3, 3), (4, 4)]]))
    x = data.draw(hostile_arrays(small, max_n=6, min_valid_n=2), label="X")
    arr = _as_array(x)
    n = arr.shape[0] if arr is not None and arr.ndim >= 1 else 0
    c = data.draw(_condition_strategy(n), label="c")
    verdict = x_verdict(x, None, bounded=False, fit=True)
    verdict = verdict.add(c_verdict(c, n if not verdict.problems else None, None, fit=True))
    det = AnomalyDetector(name, **TINY)
    # Features so extreme that float32 overflows (say 1e20 beside 0.3, one sample per split) may
    # make training diverge: TrainingDivergedError names that, and is allowed only in those cases.
    fitted = _judge(verdict, lambda: det.fit(x, c=c), area="detector.fit",
                    accepted=(*ACCEPTED, TrainingDivergedError))
    if fitted is None:
        assert not hasattr(det, "model_"), "a refused fit left a model behind"
        return
    scores = fitted.decision_function(x)
    assert scores.shape == (n,) and np.isfinite(scores).all()
    assert all(math.isfinite(t) for t in fitted.thresholds_.values())


