#!/usr/bin/env bash
# Set up ./.venv with PyTorch and dcvae (editable); `--test` adds the test tools.
# PyTorch is pinned to 2.13.0 here because that CPU build lies on this project's machines (a bare
# `torch` would pull a multi-GB CUDA build); dcvae itself only needs torch>=2.2, so override with
# TORCH_SPEC="torch" (or a CUDA wheel) on your own machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
