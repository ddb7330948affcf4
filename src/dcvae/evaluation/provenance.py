"""Where a number came from: the library's git commit and the machine, for every record and report."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]  # the dcvae package


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The short git commit of the library's sources, ``+local-changes`` when they differ from it
    (None outside a git checkout, e.g. an installed wheel)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=_PACKAGE, timeout=10, check=False)
        # changes to the library's own sources since that commit are flagged, not hidden
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True,
                                    text=True, cwd=_PACKAGE, timeout=10, check=False).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("+local-changes" if dirty else "")


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """The machine a run used: CPU, cores, PyTorch threads and version, host, GPU if any."""
    import torch  # here, not at import: `dcvae --help` must not wait for torch

    info = {"cpu": cpu_name(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "host": socket.gethostname()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def hardware_summary() -> str:
    """One line for a terminal: 'AMD EPYC, 2 CPU cores'."""
    return f"{cpu_name()}, {os.cpu_count()} CPU cores"
