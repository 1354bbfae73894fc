"""Kept for one release: import from :mod:`pyinfer.profiling` instead (the profiler moved)."""

from __future__ import annotations

from pyinfer.profiling.profiler import PerformanceProfiler, sweep_report
from pyinfer.profiling.settings import DEFAULT_STABILITY_TARGET, TIMING_METHODS, ProfilerSettings
from pyinfer.profiling.timing import MIN_THROUGHPUT_CALLS

__all__ = [
    "DEFAULT_STABILITY_TARGET",
    "MIN_THROUGHPUT_CALLS",
    "TIMING_METHODS",
    "PerformanceProfiler",
    "ProfilerSettings",
    "sweep_report",
]
