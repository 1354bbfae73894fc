"""Measuring a model: settings, stopping rule, timing sources, memory, GPU sampling, sweeps.

This package holds everything that runs a model to measure it: :class:`PerformanceProfiler`
(the coordinator), :class:`ProfilerSettings`, the stopping rule and warm-up
(:mod:`~pyinfer.profiling.stopping`), the timing sources (:mod:`~pyinfer.profiling.timing`),
the memory pass, NVML sampling, batch sweeps, the inputs a measurement runs, the per-device
measurement lock, the machine-load monitor (:mod:`~pyinfer.profiling.noise`) and repetitions in
fresh worker processes (:mod:`~pyinfer.profiling.repeat` starts them, :mod:`.worker` is their
side, :mod:`.jobs` what passes between, :mod:`.merge` makes one result of their runs), and the
timing of any code (:mod:`.callables` makes a callable something the profiler measures,
:mod:`.code_timing` holds :func:`profile_callable` and :func:`measure`). Its
results are the dataclasses of :mod:`pyinfer.report`, which imports nothing from here.
"""

from __future__ import annotations

from pyinfer.profiling import jobs, merge, repeat
from pyinfer.profiling.callables import CallableModel
from pyinfer.profiling.code_timing import Measurement, measure, profile_callable
from pyinfer.profiling.profiler import PerformanceProfiler, sweep_report
from pyinfer.profiling.settings import (
    DEFAULT_STABILITY_TARGET,
    TIMING_METHODS,
    IntRange,
    ProfilerSettings,
)
from pyinfer.profiling.sweep import MIN_PARTIAL_SAMPLES
from pyinfer.profiling.timing import MIN_THROUGHPUT_CALLS

__all__ = [
    "DEFAULT_STABILITY_TARGET",
    "MIN_PARTIAL_SAMPLES",
    "MIN_THROUGHPUT_CALLS",
    "TIMING_METHODS",
    "CallableModel",
    "IntRange",
    "Measurement",
    "PerformanceProfiler",
    "ProfilerSettings",
    "jobs",
    "measure",
    "merge",
    "profile_callable",
    "repeat",
    "sweep_report",
]
