"""How busy other processes keep the CPUs as the suite starts (noisy measurements ahead).

The suite also records each entry's load while it was timed (``ProfileReport.noise``, from
:class:`pyinfer.profiling.noise.NoiseMonitor`); this is the look before it starts. The threshold
is :data:`pyinfer.report.noise.BUSY_CPUS`, the one every noise judgement uses.
"""

from __future__ import annotations

import os
import time

from pyinfer.profiling.noise import read_cpu_times
from pyinfer.report.noise import BUSY_CPUS

__all__ = ["BUSY_CPUS", "BUSY_SAMPLE_S", "busy_cpus", "busy_warning"]

#: How long the suite samples ``/proc/stat`` before it starts.
BUSY_SAMPLE_S = 0.5


def _cpu_times() -> tuple[int, int] | None:
    """Total and idle ticks of all CPUs (``/proc/stat``), or ``None`` off Linux."""
    times = read_cpu_times()
    return None if times is None else (times.total, times.idle)


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
