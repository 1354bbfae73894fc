"""Energy per inference: the CPU packages' RAPL counters and an NVIDIA GPU's NVML energy counter.

The readers live in :mod:`pyinfer.profiling.energy`, where the profiler's throughput run reads
them too, and the reading in :mod:`pyinfer.report.energy`; this module keeps their names where
``pyinfer ops`` and earlier code import them.
"""

from __future__ import annotations

from pyinfer.profiling.energy import (
    POWERCAP,
    EnergyMeter,
    measure_energy,
    rapl_domains,
    rapl_joules,
    read_rapl_uj,
)
from pyinfer.report.energy import EnergyReading

__all__ = [
    "POWERCAP",
    "EnergyMeter",
    "EnergyReading",
    "measure_energy",
    "rapl_domains",
    "rapl_joules",
    "read_rapl_uj",
]
