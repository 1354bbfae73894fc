"""Profiler settings the tests of worker processes and of the suite share."""

from __future__ import annotations

from pyinfer.profiling import ProfilerSettings

#: Short runs: a few calls each, so a test of several workers, entries and rounds takes seconds.
FAST_RUNS = ProfilerSettings(
    warmup_iterations=2,
    warmup_until_settled=False,
    min_iterations=10,
    min_time_s=0.0,
    max_iterations=30,
    max_time_s=5.0,
    throughput_time_s=0.05,
    memory_runs=1,
)

#: Runs that stop at 3 calls, never stable (a CV target no timing meets): the unstable path.
NEVER_STABLE = ProfilerSettings(
    warmup_iterations=0,
    warmup_until_settled=False,
    min_iterations=2,
    min_time_s=0.0,
    max_iterations=3,
    max_time_s=1.0,
    stability_metric="cv",
    stability_target=1e-12,
    memory_runs=1,
)
