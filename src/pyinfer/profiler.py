"""Kept for one release: import from :mod:`pyinfer.profiling` instead (the profiler moved)."""

from __future__ import annotations

from pyinfer.profiling import (
    DEFAULT_STABILITY_TARGET,
    MIN_PARTIAL_SAMPLES,
    MIN_THROUGHPUT_CALLS,
    TIMING_METHODS,
    PerformanceProfiler,
    ProfilerSettings,
    sweep_report,
)

__all__ = [
    "DEFAULT_STABILITY_TARGET",
    "MIN_PARTIAL_SAMPLES",
    "MIN_THROUGHPUT_CALLS",
    "TIMING_METHODS",
    "PerformanceProfiler",
    "ProfilerSettings",
    "sweep_report",
]
