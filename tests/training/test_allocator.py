"""Keeping freed memory (``dcvae.training.allocator``) is set by training and scoring, leaves a
user's own malloc settings alone, and changes no number the library computes."""

import json
import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the thresholds are glibc's")

# Trains the library default (dCVAE-prior, conv on images) on small uint8 images with conditions
# and scores them in marginal mode (or only sets the thresholds); prints whether they are the
# library's, and the scores.
CHILD = """
import json, sys
import numpy as np
from dcvae.training import allocator
if sys.argv[1] == "glibc":
    allocator._applied = False  # nothing is set: glibc's own thresholds
if sys.argv[2] == "settings only":
    print(json.dumps({"kept": allocator.keep_freed_memory()}))
    sys.exit()
from dcvae import AnomalyDetector
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(256, 1, 12, 12), dtype=np.uint8)
c = rng.integers(0, 3, size=256)
det = AnomalyDetector(epochs=2, batch_size=32, latent_dim=4, hidden_dims=(16, 8), progress=False)
det.fit(x, c=c)
print(json.dumps({"kept": allocator._applied,  # None had neither training nor scoring set them
                  "scores": det.score_samples(x).tolist()}))
"""


def _child(mode: str, what: str = "train and score", **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, what], env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~9 s: two fresh Pythons, each importing torch, fitting and scoring
@glibc
def test_training_and_scoring_keep_freed_memory_and_compute_the_same_numbers():
    kept, plain = _child("kept"), _child("glibc")
    assert kept["kept"] is True and plain["kept"] is False
    # bit for bit: memory handed back reused (instead of fresh zeroed pages) changes no result,
    # which it would if some kernel read memory it never wrote
    assert kept["scores"] == plain["scores"]


@glibc
def test_a_users_own_malloc_setting_is_left_alone():
    def kept(**env: str) -> bool:
        return _child("kept", "settings only", **env)["kept"]

    assert kept(MALLOC_ARENA_MAX="2") is True  # not a threshold
    assert kept(MALLOC_TRIM_THRESHOLD_="1000000") is False
    assert kept(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000") is False
    assert kept(GLIBC_TUNABLES="glibc.cpu.x86_rep_movsb_threshold=4096") is True


def test_elsewhere_it_sets_nothing(monkeypatch):
    from dcvae.training import allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False
