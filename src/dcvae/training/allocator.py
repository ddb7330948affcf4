"""Keep freed memory in the process on glibc, so that PyTorch's CPU tensors are not page-faulted
afresh at every training step and scoring batch.

PyTorch's CPU allocator asks ``malloc`` for every tensor and frees it at once. glibc returns the
free top of its heap to the kernel whenever more than ``M_TRIM_THRESHOLD`` of it is free, and
serves large blocks by ``mmap``; the next step then takes the same megabytes back from the kernel,
one zeroed 4 KiB page at a time. The conv backbone's activations (3-26 MB a batch) hit this at
every step: 1,000-1,900 page faults a step, and an 8% slower training step and a 1.46× slower
marginal scoring than with the memory kept (``benchmarks/allocator.py``). The thresholds below keep
it; blocks over 32 MiB (a dataset) still go to ``mmap`` and back to the kernel when freed, and at
most 128 MiB of free heap is held.

Process-wide and set once. Left alone: a process whose user tuned malloc themselves (``MALLOC_*``
variables or glibc tunables), and every C library but glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 128 * 2**20
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_MMAP_MAX_")

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (once per process); whether they are this module's now."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in os.environ.get(
            "GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, glibc's among them: no library search
        # both or neither: setting one alone turns off glibc's dynamic thresholds and leaves the
        # other at its small default, which is slower than either (trim alone: 2.2× the step)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False
