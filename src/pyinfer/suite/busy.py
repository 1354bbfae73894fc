"""How busy other processes keep the CPUs as the suite starts (noisy measurements ahead)."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["BUSY_CPUS", "BUSY_SAMPLE_S", "busy_cpus", "busy_warning"]

#: The suite warns when other processes keep at least this many CPUs busy as it starts: torch
#: and ONNX Runtime run one thread per core, and a thread that shares its core with another
#: process makes every call wait for it (seen here: ResNet50 eager from 60 ms to over a second
#: per call while another process's test suite ran on one of the 2 cores).
BUSY_CPUS = 0.5
#: How long the suite samples ``/proc/stat`` before it starts.
BUSY_SAMPLE_S = 0.5


def _cpu_times() -> tuple[int, int] | None:
    """Total and idle jiffies of all CPUs (``/proc/stat``), or ``None`` off Linux."""
    try:
        with Path("/proc/stat").open(encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(values) < 5:
        return None
    return sum(values[:8]), values[3] + values[4]  # idle + iowait


def busy_cpus(interval_s: float = 0.0) -> float | None:
    """CPUs kept busy by any process over a short sample (this one is idle meanwhile)."""
    first = _cpu_times()
    time.sleep(interval_s or BUSY_SAMPLE_S)
    second = _cpu_times()
    if first is None or second is None or second[0] <= first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return (total - idle) / total * (os.cpu_count() or 1)


def busy_warning(busy: float | None) -> str:
    """A warning when other processes keep the CPUs busy (measurements will be noisy)."""
    cores = os.cpu_count() or 1
    if busy is None or busy < BUSY_CPUS:
        return ""
    return (
        f"warning: other processes kept {busy:.1f} of {cores} CPUs busy before the suite "
        "started: expect noisy and unstable measurements"
    )
