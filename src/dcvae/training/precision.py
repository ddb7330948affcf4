"""Numeric precision of training and scoring: float32, or bfloat16 matrix products under autocast."""

from __future__ import annotations

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def bf16_is_slow_here(device: torch.device | str) -> bool:
    """True on CPUs without native bfloat16 matmul (no AVX512-BF16/AMX): there bf16 is emulated
    and far slower than float32 (30-35x at the matmul ceiling of benchmarks/throughput.py on an
    AVX2-only AMD EPYC)."""
    if torch.device(device).type != "cpu":
        return False
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False  # not Linux: cannot tell, do not warn
    return "avx512_bf16" not in flags and "amx_bf16" not in flags


def autocast(device: torch.device | str, precision: str) -> torch.autocast:
    """The autocast context of ``precision`` ("fp32" = disabled) on ``device``."""
    dtype = PRECISIONS[precision]
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

