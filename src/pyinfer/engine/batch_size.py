"""Choosing a batch size: the largest that fits in memory, the fastest within a latency budget.

:func:`largest_fitting_batch` doubles then bisects on out-of-memory; :func:`measure_batch_sizes`
times each candidate's batch call with the core's timed loop; :func:`best_batch_under_budget`
is the selection rule itself (the highest throughput among the points whose latency statistic
is within the budget), written apart so every batch-size sweep applies the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyinfer import core
from pyinfer.engine.results import Arrays, BatchMeasurement, BatchSizeChoice
from pyinfer.engine.runner import BatchRunner
from pyinfer.errors import InvalidArgumentError, OutOfMemoryError, as_out_of_memory

__all__ = [
    "LatencyPoint",
    "best_batch_under_budget",
    "candidate_sizes",
    "choose_batch_size",
    "largest_fitting_batch",
    "measure_batch_sizes",
]

logger = logging.getLogger(__name__)

#: Batch sizes tried when none are given: powers of two up to 64.
DEFAULT_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class LatencyPoint:
    """One measured batch size, as the budget rule reads it.

    Attributes:
        batch_size: The batch size.
        throughput: Items per second.
        latency_ms: Latency statistics of one batch call in milliseconds, by name
            (``"median"``, ``"p90"``, ``"p95"``...).
    """

    batch_size: int
    throughput: float
    latency_ms: Mapping[str, float]


def best_batch_under_budget(
    points: Sequence[LatencyPoint], budget_ms: float | None, statistic: str = "median"
) -> LatencyPoint | None:
    """The point of highest throughput whose latency ``statistic`` is within the budget.

    Args:
        points: The measured batch sizes (those that failed or ran out of memory left out).
        budget_ms: The most the statistic may be, in milliseconds; ``None``: no budget.
        statistic: The latency statistic the budget bounds, a key of each point's
            ``latency_ms`` (the engine uses ``"median"``, the profiler's sweep ``"p95"``).

    Returns:
        The chosen point (the first of equal throughputs), or ``None`` if none is within the
        budget (or there are no points).

    Raises:
        InvalidArgumentError: If a point lacks the statistic.
    """
    missing = [p.batch_size for p in points if statistic not in p.latency_ms]
    if missing:
        raise InvalidArgumentError(f"batch sizes {missing} have no {statistic!r} latency")
    fitting = [p for p in points if budget_ms is None or p.latency_ms[statistic] <= budget_ms]
    if not fitting:
        return None
    return max(fitting, key=lambda p: p.throughput)


def candidate_sizes(fixed_batch: int | None, candidates: Iterable[int] | None) -> list[int]:
    """The batch sizes to try, sorted: just ``fixed_batch`` when the model fixes one.

    Raises:
        InvalidArgumentError: On empty or non-positive candidates.
    """
    if fixed_batch is not None:
        sizes = [fixed_batch]
    else:
        given = DEFAULT_CANDIDATES if candidates is None else candidates
        sizes = sorted({int(c) for c in given})
    if not sizes or sizes[0] < 1:
        raise InvalidArgumentError(f"candidates must be positive batch sizes, got {sizes}")
    return sizes


def _fits(runner: BatchRunner, batch_of: Callable[[int], Arrays], size: int, retries: int) -> bool:
    for attempt in range(retries + 1):
        try:
            runner.call(batch_of(size), size)
            return True
        except Exception as exc:
            if as_out_of_memory(exc) is None:
                raise
            logger.info(
                "batch %d: out of memory (attempt %d of %d)", size, attempt + 1, retries + 1
            )
            runner.free_memory()
    return False


def largest_fitting_batch(
    runner: BatchRunner,
    batch_of: Callable[[int], Arrays],
    *,
    start: int,
    limit: int,
    retries: int,
) -> int:
    """The largest batch from ``start`` to ``limit`` that runs without running out of memory.

    Doubles from ``start`` until a batch does not fit or ``limit`` is reached, then bisects
    between the last size that fit and the first that did not; a size that runs out of memory
    is tried ``retries`` more times after freeing caches.

    Args:
        runner: Makes the model calls.
        batch_of: The batch of a given size to try.
        start: The first size.
        limit: The largest size to try.
        retries: Extra attempts for a size that ran out of memory.

    Returns:
        The largest size that fit.

    Raises:
        OutOfMemoryError: If ``start`` itself does not fit.
    """
    model = runner.model
    if not _fits(runner, batch_of, start, retries):
        raise OutOfMemoryError(
            f"model '{model.name}' runs out of memory at batch {start} on {runner.device}"
        )
    good, bad = start, None
    while good < limit:
        size = min(good * 2, limit)
        if _fits(runner, batch_of, size, retries):
            good = size
        else:
            bad = size
            break
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if _fits(runner, batch_of, mid, retries):
                good = mid
            else:
                bad = mid
    logger.info("model '%s': largest batch that fits is %d", model.name, good)
    return good


def _bound_call(
    call: Callable[[Arrays, int], Arrays], batch: Arrays, size: int
) -> Callable[[], Arrays]:
    def run() -> Arrays:
        return call(batch, size)

    return run


def measure_batch_sizes(
    runner: BatchRunner,
    batch_of: Callable[[int], Arrays],
    sizes: Sequence[int],
    *,
    iterations: int,
    warmup: int,
    latency_budget_ms: float | None,
) -> list[BatchMeasurement]:
    """Times each size's batch call; a size that runs out of memory is recorded and skipped.

    Args:
        runner: Makes the model calls.
        batch_of: The batch of a given size to time.
        sizes: The batch sizes, in the order to try them.
        iterations: Timed calls per size.
        warmup: Untimed calls per size first.
        latency_budget_ms: The budget each row's median is compared with, or ``None``.

    Returns:
        One row per size, in order.
    """
    rows: list[BatchMeasurement] = []
    for size in sizes:
        batch = batch_of(size)
        try:
            recorder = core.time_calls(_bound_call(runner.call, batch, size), iterations, warmup)
        except Exception as exc:
            if as_out_of_memory(exc) is None:
                raise
            runner.free_memory()
            rows.append(BatchMeasurement(size, float("nan"), float("nan"), 0.0, True, False))
            continue
        summary = recorder.summary((50.0, 90.0))
        median_ms = summary.percentile(50.0) / 1e6
        within = latency_budget_ms is None or median_ms <= latency_budget_ms
        rows.append(
            BatchMeasurement(
                size,
                median_ms,
                summary.percentile(90.0) / 1e6,
                size / (median_ms / 1e3) if median_ms > 0 else float("inf"),
                False,
                within,
            )
        )
    return rows


def choose_batch_size(
    rows: Sequence[BatchMeasurement], sizes: Sequence[int], latency_budget_ms: float | None
) -> BatchSizeChoice:
    """The measured size of highest throughput whose median latency fits the budget.

    Raises:
        InvalidArgumentError: If no size fits the budget (the message gives the fastest
            latency seen).
    """
    measured = [r for r in rows if not r.out_of_memory]
    points = [
        LatencyPoint(r.batch_size, r.throughput, {"median": r.latency_ms, "p90": r.p90_latency_ms})
        for r in measured
    ]
    best = best_batch_under_budget(points, latency_budget_ms, "median")
    if best is None:
        fastest = (
            f"{min(r.latency_ms for r in measured):.3f} ms" if measured else "none fit in memory"
        )
        raise InvalidArgumentError(
            f"no batch size of {list(sizes)} meets the latency budget of {latency_budget_ms} ms "
            f"(fastest: {fastest})"
        )
    return BatchSizeChoice(best.batch_size, latency_budget_ms, tuple(rows))
