"""Profile reports built by hand for the comparison and repetition tests: runs of given medians."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyinfer.report import LatencyMeasurement, LatencyStats, ProfileReport, summarize_runs
from pyinfer.report.environment import Environment, collect_environment

_ENVIRONMENT: list[Environment] = []


def report_with_runs(
    medians_ms: Sequence[float] | None,
    *,
    per_call_ms: float | None = None,
    model: str = "mnv2",
    fmt: str = "onnx",
) -> ProfileReport:
    """A report whose runs have these medians, 3 calls each at exactly the median.

    Args:
        medians_ms: The run medians; ``None`` for one run in the process (no repetitions).
        per_call_ms: Per-call samples all at this value instead of the runs' (15 of them).
        model: The model's name.
        fmt: Its format.
    """
    runs = [np.full(3, m * 1e6) for m in medians_ms or (5.0,)]
    samples = np.concatenate(runs) if per_call_ms is None else np.full(15, per_call_ms * 1e6)
    latency = LatencyMeasurement(
        batch_size=1,
        stats=LatencyStats.from_samples_ns(samples),
        samples_ns=tuple(samples.tolist()),
        warmup_iterations=10,
        warmup_settled=True,
        stable=True,
        stability_reason="stable",
        stability_metric="median_ci",
        stability_value=0.0,
        timing_method="host timed loop",
        wall_s=1.0,
    )
    reps = None
    if medians_ms is not None:
        reps = summarize_runs(runs, stable=[True] * len(runs), wall_s=[1.0] * len(runs))
    if not _ENVIRONMENT:
        _ENVIRONMENT.append(collect_environment())
    return ProfileReport(
        model=model,
        format=fmt,
        framework="onnxruntime",
        device="cpu",
        device_name="CPU",
        batch_size=1,
        input_shapes={"x": (1, 3)},
        input_dtypes={"x": "float32"},
        latency=latency,
        environment=_ENVIRONMENT[0],
        repetitions=reps,
    )
