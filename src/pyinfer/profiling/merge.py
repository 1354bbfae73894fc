"""Several runs of one measurement made into one result: pooled samples, between-run figures.

Each repetition is a whole latency measurement in its own process. The merged measurement holds
every run's samples (its statistics describe them all), counts a run's calls and warm-up once
each, and is stable only when every run met its own stability target *and* the runs agree with
one another (the between-run figures of :func:`pyinfer.report.repetitions.summarize_runs`).
Batch curves merge point by point (noise readings: :func:`pyinfer.report.noise.combine_readings`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

import numpy as np

from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.profiling.sweep import finish_curve
from pyinfer.report import BatchCurve, BatchPoint, LatencyMeasurement, LatencyStats
from pyinfer.report.repetitions import Repetitions, summarize_runs

__all__ = ["merge_curves", "merge_latency", "stability_reason"]


def stability_reason(
    reps: Repetitions, pooled_value: float, settings: ProfilerSettings, metric_label: str
) -> str:
    """The merged measurement's stability line: both criteria, with their figures."""
    target = settings.stability_target
    within_ok = pooled_value <= target
    within = (
        f"the {sum(r.samples for r in reps.runs)} calls of {reps.count} runs pin the median: "
        f"{metric_label} {pooled_value * 100:.2f}% {'<=' if within_ok else '>'} "
        f"{target * 100:.2f}% target"
    )
    if reps.reproducibility is None:
        between = "run-to-run variation not measured"
    else:
        verdict = "within" if reps.reproducible else "NOT within"
        between = (
            f"a repeat is expected within +-{reps.reproducibility * 100:.1f}% of the median, "
            f"{verdict} the {reps.reproducibility_target * 100:g}% target"
        )
    head = "stable" if within_ok and reps.reproducible is not False else "NOT stable"
    return f"{head}: {within}; {between}"


def merge_latency(
    runs: Sequence[LatencyMeasurement], settings: ProfilerSettings
) -> tuple[LatencyMeasurement, Repetitions]:
    """One latency measurement of several runs of it, and their between-run figures.

    The within-run criterion is the stopping rule's measure over every run's calls pooled
    (the runs stop at their minimums; together they must pin the median to
    ``stability_target``); each run is marked stable when its own measure is within
    ``stability_target * sqrt(runs)``, as its share of the calls allows. The between-run
    criterion is the reproducibility of :func:`~pyinfer.report.repetitions.summarize_runs`.

    Args:
        runs: The runs, in the order made (at least one, each with its raw samples).
        settings: The measurement's settings (stability and reproducibility targets).

    Returns:
        The merged measurement (statistics over every run's samples, stable only when both
        criteria hold) and the repetitions' figures.
    """
    rule = dataclasses.replace(settings, repetitions=1).stopping_rule()
    samples = [np.asarray(run.samples_ns, dtype=np.float64) for run in runs]
    share = settings.stability_target * math.sqrt(len(runs))
    reps = summarize_runs(
        samples,
        stable=[rule.stability(s) <= share for s in samples],
        wall_s=[run.wall_s for run in runs],
        target=settings.reproducibility_target,
    )
    pooled = np.concatenate(samples)
    value = rule.stability(pooled)
    label = "cv" if rule.stability_metric == "cv" else "median 95% CI"
    reason = stability_reason(reps, value, settings, label)
    # Later runs repeat the first run's warm-up count without settling again (None).
    settled = [run.warmup_settled for run in runs if run.warmup_settled is not None]
    host = [run.host_mean_ms for run in runs if run.host_mean_ms is not None]
    first = runs[0]
    merged = LatencyMeasurement(
        batch_size=first.batch_size,
        stats=LatencyStats.from_samples_ns(pooled),
        samples_ns=tuple(float(x) for x in pooled),
        warmup_iterations=sum(run.warmup_iterations for run in runs),
        warmup_settled=all(settled) if settled else None,
        stable=reason.startswith("stable"),
        stability_reason=reason,
        stability_metric=first.stability_metric,
        stability_value=value,
        timing_method=first.timing_method,
        wall_s=sum(run.wall_s for run in runs),
        host_mean_ms=statistics.fmean(host) if host else None,
    )
    return merged, reps


def _merge_point(size: int, points: Sequence[BatchPoint], target: float) -> BatchPoint:
    """One batch size's points from every run: medians of the runs' figures.

    Stable when every run was and the runs' medians agree within ``target``.
    """
    failed = [p for p in points if not p.ok]
    if failed:
        worst = next((p for p in failed if p.out_of_memory), failed[0])
        return BatchPoint(
            size,
            error=worst.error,
            out_of_memory=worst.out_of_memory,
            samples=sum(p.samples or 0 for p in points),
            interrupted=any(p.interrupted for p in points),
        )

    def median(values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    medians = [p.latency_median_ms or 0.0 for p in points]
    reps = summarize_runs(
        [[m * 1e6] for m in medians],
        stable=[p.stable is True for p in points],
        wall_s=[0.0 for _ in points],
        target=target,
    )
    return BatchPoint(
        size,
        latency_mean_ms=median([p.latency_mean_ms for p in points]),
        latency_median_ms=median([p.latency_median_ms for p in points]),
        latency_p95_ms=median([p.latency_p95_ms for p in points]),
        throughput_fps=median([p.throughput_fps for p in points]),
        stable=reps.within_run_stable and reps.reproducible is not False,
        samples=sum(p.samples or 0 for p in points),
        interrupted=any(p.interrupted for p in points),
        run_medians_ms=tuple(medians) if len(points) > 1 else (),
        reproducibility=reps.reproducibility,
    )


def merge_curves(curves: Sequence[BatchCurve], target: float) -> BatchCurve:
    """One batch curve of several runs of a sweep: per batch size, the median of the runs.

    A point is stable when each run's was and its run medians are reproducible within
    ``target`` (a fraction).

    A batch size that failed in any run is failed in the merged curve (out of memory first);
    sizes a run did not reach (it ran out of memory earlier) are left out of its figures. The
    knee and best batch are chosen again on the merged points.
    """
    sizes: dict[int, list[BatchPoint]] = {}
    for curve in curves:
        for p in curve.points:
            sizes.setdefault(p.batch_size, []).append(p)
    points = [_merge_point(size, sizes[size], target) for size in sorted(sizes)]
    return finish_curve(points, curves[0].latency_budget_ms)
