"""Batch sweeps: latency and throughput per batch size, the knee and the best batch.

A sweep measures each batch size in increasing order; running out of memory ends it, any other
failure is recorded at its point, and Ctrl-C leaves the curve measured so far on the exception.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from pyinfer.engine.batch_size import LatencyPoint, best_batch_under_budget
from pyinfer.errors import as_out_of_memory
from pyinfer.report import BatchCurve, BatchPoint, LatencyMeasurement
from pyinfer.report.stats import KNEE_FRACTION, knee_index

__all__ = ["MIN_PARTIAL_SAMPLES", "finish_curve", "point", "sweep"]

logger = logging.getLogger(__name__)

#: An interrupted latency measurement goes into a partial report only with at least this many
#: samples: fewer make no statistics worth writing down.
MIN_PARTIAL_SAMPLES = 5


def sweep(
    measure: Callable[[int], LatencyMeasurement],
    sizes: list[int],
    latency_budget_ms: float | None,
    *,
    forget_inputs: Callable[[], None],
    release_cache: Callable[[], None],
) -> BatchCurve:
    """Measures each of ``sizes`` (sorted, unique) and builds the curve.

    Args:
        measure: A latency measurement at one batch size.
        sizes: The batch sizes, in the order to measure.
        latency_budget_ms: The budget for the best batch, if any.
        forget_inputs: Drops the inputs of the last batch (after a failure and at the end).
        release_cache: Gives cached device memory back after running out of it.

    Raises:
        KeyboardInterrupt: On Ctrl-C, with the curve so far as its ``partial_result``.
    """
    points: list[BatchPoint] = []
    for size in sizes:
        try:
            m = measure(size)
        except KeyboardInterrupt as exc:
            forget_inputs()
            partial = getattr(exc, "partial_result", None)
            taken = partial.iterations if isinstance(partial, LatencyMeasurement) else 0
            if isinstance(partial, LatencyMeasurement) and taken >= MIN_PARTIAL_SAMPLES:
                points.append(point(partial, interrupted=True))
            else:
                points.append(
                    BatchPoint(
                        size,
                        error=f"interrupted after {taken} samples",
                        samples=taken,
                        interrupted=True,
                    )
                )
            curve = finish_curve(points, latency_budget_ms)
            exc.partial_result = curve  # type: ignore[attr-defined]
            raise
        except Exception as exc:
            oom = as_out_of_memory(exc)
            forget_inputs()
            if oom is not None:
                logger.warning("batch %d: out of memory; the sweep stops here", size)
                points.append(BatchPoint(size, error=f"out of memory: {oom}", out_of_memory=True))
                release_cache()
                break
            logger.warning("batch %d failed: %s", size, exc)
            points.append(BatchPoint(size, error=f"{type(exc).__name__}: {exc}"))
            continue
        points.append(point(m))
    forget_inputs()
    return finish_curve(points, latency_budget_ms)


def point(m: LatencyMeasurement, *, interrupted: bool = False) -> BatchPoint:
    """A sweep's point from a latency measurement (an interrupted one is not stable)."""
    return BatchPoint(
        m.batch_size,
        latency_mean_ms=m.stats.mean_ms,
        latency_median_ms=m.stats.median_ms,
        latency_p95_ms=m.stats.p95_ms,
        throughput_fps=m.throughput_fps,
        stable=m.stable and not interrupted,
        samples=m.iterations,
        interrupted=interrupted,
    )


def finish_curve(points: list[BatchPoint], budget_ms: float | None) -> BatchCurve:
    """The curve of ``points``: its knee and its best batch (under the budget, if any)."""
    measured = [
        p for p in points if p.ok and p.throughput_fps is not None and p.latency_p95_ms is not None
    ]
    if not measured:
        return BatchCurve(tuple(points), None, budget_ms, None, "no batch size was measured")
    fps = [p.throughput_fps for p in measured if p.throughput_fps is not None]
    knee = measured[knee_index(fps, KNEE_FRACTION)].batch_size
    candidates = [
        LatencyPoint(p.batch_size, p.throughput_fps or 0.0, {"p95": p.latency_p95_ms or math.inf})
        for p in measured
    ]
    chosen = best_batch_under_budget(candidates, budget_ms, statistic="p95")
    if chosen is None:
        fastest = min(measured, key=lambda p: p.latency_p95_ms or math.inf)
        reason = (
            f"none: no batch size has P95 <= {budget_ms:g} ms (the lowest is "
            f"{fastest.latency_p95_ms:.3f} ms at batch {fastest.batch_size})"
        )
        return BatchCurve(tuple(points), knee, budget_ms, None, reason)
    best = next(p for p, c in zip(measured, candidates, strict=True) if c is chosen)
    if budget_ms is None:
        reason = (
            f"batch {best.batch_size}: the highest throughput, {best.throughput_fps:.1f} FPS "
            "(no latency budget given)"
        )
    else:
        reason = (
            f"batch {best.batch_size}: {best.throughput_fps:.1f} FPS with P95 "
            f"{best.latency_p95_ms:.3f} ms within the {budget_ms:g} ms budget"
        )
    return BatchCurve(tuple(points), knee, budget_ms, best.batch_size, reason)
