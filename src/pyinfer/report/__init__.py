"""Profiling results and how they are shown: text, JSON, CSV, Markdown, tables, plots, comparison.

This package holds what a measurement produces and everything that reads it back, so that a
saved report can be loaded, compared and rendered without a framework or the profiler: the
result dataclasses (:mod:`~pyinfer.report.results`, :mod:`~pyinfer.report.records`), their JSON
with a schema version (:mod:`~pyinfer.report.codec`), the renderings (text in the standard
report layout, Markdown, box tables, CSV, PNG plots), the comparison of two reports on their
run medians (:mod:`~pyinfer.report.comparison`), repetitions in fresh processes and their
between-run figures (:mod:`~pyinfer.report.repetitions`), named baselines
(:mod:`~pyinfer.report.baselines`), atomic file writes, the statistics both the profiler and the
reports use (:mod:`~pyinfer.report.stats`) and the environment recorded with every result
(:mod:`~pyinfer.report.environment`). It imports nothing of the profiler, the engine or the CLI.

Durations are stored in milliseconds (``_ms``) or seconds (``_s``) and raw samples in
nanoseconds (``_ns``), sizes in bytes; units are chosen only when displaying.
"""

from __future__ import annotations

from pyinfer.report.baselines import (
    DEFAULT_BASELINE_DIR,
    baseline_names,
    baseline_path,
    load_baseline,
    save_baseline,
)
from pyinfer.report.codec import SCHEMA_VERSION, JsonRecord, check_schema, encode_json
from pyinfer.report.comparison import (
    MIN_MEANINGFUL_CHANGE,
    SIGNIFICANCE_LEVEL,
    Comparison,
    MetricChange,
    compare,
)
from pyinfer.report.energy import EnergyReading, combine_energy
from pyinfer.report.environment import Environment
from pyinfer.report.files import STALE_TEMP_S, write_atomic
from pyinfer.report.formatting import MB, format_ms, format_short, one_line
from pyinfer.report.records import BatchCurve, ProfileReport, SweepReport
from pyinfer.report.repetitions import (
    DEFAULT_REPRODUCIBILITY_TARGET,
    Repetitions,
    RunSummary,
    summarize_runs,
)
from pyinfer.report.results import (
    ArithmeticSummary,
    BatchPoint,
    ColdStart,
    GpuUtilization,
    LatencyMeasurement,
    LatencyStats,
    MemoryStats,
    Throughput,
)
from pyinfer.report.tables import box_table, comparison_table, reports_to_csv
from pyinfer.report.text import format_results

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "DEFAULT_REPRODUCIBILITY_TARGET",
    "MB",
    "MIN_MEANINGFUL_CHANGE",
    "SCHEMA_VERSION",
    "SIGNIFICANCE_LEVEL",
    "STALE_TEMP_S",
    "ArithmeticSummary",
    "BatchCurve",
    "BatchPoint",
    "ColdStart",
    "Comparison",
    "EnergyReading",
    "Environment",
    "GpuUtilization",
    "JsonRecord",
    "LatencyMeasurement",
    "LatencyStats",
    "MemoryStats",
    "MetricChange",
    "ProfileReport",
    "Repetitions",
    "RunSummary",
    "SweepReport",
    "Throughput",
    "baseline_names",
    "baseline_path",
    "box_table",
    "check_schema",
    "combine_energy",
    "compare",
    "comparison_table",
    "encode_json",
    "format_ms",
    "format_results",
    "format_short",
    "load_baseline",
    "one_line",
    "reports_to_csv",
    "save_baseline",
    "summarize_runs",
    "write_atomic",
]
