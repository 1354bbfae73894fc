"""When to stop warming up and when to stop measuring: pure logic over a sample source.

A *sample source* is a callable ``source(n)`` that runs the timed work ``n`` times and returns
``n`` durations in nanoseconds (the profiler's wraps the core's timed loop or CUDA event timer);
a *clock* returns seconds from a monotonic origin. Both are injected, so tests drive these
functions with synthetic streams and a fake clock and get the same answer every time.

Warm-up (:func:`warm_up`): a fixed count, then optionally windows of calls until the median of
one window is within :data:`SETTLE_TOLERANCE` of the previous window's (first-call effects such
as allocator growth, lazy initialisation and cache warming have died out), with a cap.

Measuring (:func:`collect`): calls are taken in chunks of about :data:`CHUNK_TIME_S`; between
chunks, and never inside one, :meth:`StoppingRule.decide` checks the rule: stop as *stable* once
the minimum count and minimum time are both reached and the stability measure is under target;
stop at the cap on count or time otherwise, flagged unstable when the measure is still over
target, with every sample taken kept.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.stats import coefficient_of_variation, median_ci_relative

__all__ = [
    "CHUNK_TIME_S",
    "SETTLE_TOLERANCE",
    "STABILITY_METRICS",
    "SampleRun",
    "SampleSource",
    "StopDecision",
    "StoppingRule",
    "WarmupPolicy",
    "WarmupResult",
    "collect",
    "warm_up",
]

logger = logging.getLogger(__name__)

SampleSource = Callable[[int], npt.NDArray[np.float64]]
Clock = Callable[[], float]

#: Target duration of one chunk of timed calls. The stopping rule is evaluated between chunks,
#: so this bounds how far past its decision point a run goes (0.1 s), while the work between
#: chunks (one stability evaluation, well under a millisecond for 10,000 samples) stays a small
#: fraction of the measured time.
CHUNK_TIME_S = 0.1

#: Warm-up has settled when one window's median is within 2% of the previous window's: below
#: a latency std under 5% of the mean, the usual target, above the drift of a quiet machine.
SETTLE_TOLERANCE = 0.02

#: A warm-up window lasts about this long, and holds between the two counts below: long
#: enough that its median is not one noisy call, short enough to follow a transient.
WARMUP_WINDOW_S = 0.05
WARMUP_WINDOW_MIN_CALLS = 5
WARMUP_WINDOW_MAX_CALLS = 100

#: The measures of stability the rule accepts: ``cv`` (std / mean, for "latency
#: std under 5%") and ``median_ci`` (relative half-width of the 95% confidence interval of the
#: median, which shrinks as samples accumulate even on a noisy machine).
STABILITY_METRICS = ("cv", "median_ci")


@dataclass(frozen=True)
class StopDecision:
    """Why a measurement stopped.

    Attributes:
        stable: Whether the stability measure was under target when it stopped.
        reason: One sentence for reports: which condition stopped it and the figures.
        stability_value: The stability measure at the stop (a fraction: 0.012 is 1.2%).
    """

    stable: bool
    reason: str
    stability_value: float


@dataclass(frozen=True)
class StoppingRule:
    """Minimum count and time, caps, and a stability target.

    Attributes:
        min_iterations: Never stop as stable before this many samples.
        min_time_s: Never stop as stable before this much measured time.
        max_iterations: Stop at this many samples, stable or not.
        max_time_s: Stop after this much measured time, stable or not (``math.inf``: no time
            cap, the count alone bounds the run).
        stability_target: The stability measure must be at or under this (0.05 = 5%).
        stability_metric: ``"cv"`` or ``"median_ci"`` (see :data:`STABILITY_METRICS`).
    """

    min_iterations: int = 100
    min_time_s: float = 1.0
    max_iterations: int = 10_000
    max_time_s: float = 30.0
    stability_target: float = 0.01
    stability_metric: str = "median_ci"

    def __post_init__(self) -> None:
        if self.min_iterations < 1:
            raise InvalidArgumentError(
                f"min_iterations must be at least 1, got {self.min_iterations}"
            )
        if self.max_iterations < self.min_iterations:
            raise InvalidArgumentError(
                f"max_iterations ({self.max_iterations}) must be at least min_iterations "
                f"({self.min_iterations})"
            )
        if not (0.0 <= self.min_time_s < math.inf and self.max_time_s > 0.0):
            raise InvalidArgumentError(
                f"min_time_s must be finite and >= 0 and max_time_s > 0, got {self.min_time_s} and "
                f"{self.max_time_s}"
            )
        if self.max_time_s < self.min_time_s:
            raise InvalidArgumentError(
                f"max_time_s ({self.max_time_s}) must be at least min_time_s ({self.min_time_s})"
            )
        if not self.stability_target > 0.0:
            raise InvalidArgumentError(
                f"stability_target must be above 0 (0.05 is 5%), got {self.stability_target}"
            )
        if self.stability_metric not in STABILITY_METRICS:
            raise InvalidArgumentError(
                f"unknown stability_metric {self.stability_metric!r}; use one of "
                + ", ".join(repr(m) for m in STABILITY_METRICS)
            )

    def stability(self, samples: npt.NDArray[np.float64]) -> float:
        """The stability measure of ``samples`` (a fraction; ``inf`` when too few)."""
        if self.stability_metric == "cv":
            return coefficient_of_variation(samples)
        return median_ci_relative(samples)

    def _label(self, value: float) -> str:
        name = "cv" if self.stability_metric == "cv" else "median 95% CI"
        return f"{name} {value * 100:.2f}% {'<=' if value <= self.stability_target else '>'} "

    def decide(self, samples: npt.NDArray[np.float64], elapsed_s: float) -> StopDecision | None:
        """Whether to stop after the samples so far.

        Args:
            samples: Every sample taken, in nanoseconds.
            elapsed_s: Measured time so far, in seconds.

        Returns:
            The decision to stop, or ``None`` to take another chunk.
        """
        count = int(samples.size)
        at_min = count >= self.min_iterations and elapsed_s >= self.min_time_s
        at_cap = count >= self.max_iterations or elapsed_s >= self.max_time_s
        if not (at_min or at_cap):
            return None
        value = self.stability(samples)
        stable = value <= self.stability_target
        figures = f"{self._label(value)}{self.stability_target * 100:.2f}% target"
        if at_min and stable:
            return StopDecision(
                True, f"stable: {figures} after {count} samples in {elapsed_s:.2f} s", value
            )
        if not at_cap:
            return None
        cap = (
            f"iteration cap ({self.max_iterations})"
            if count >= self.max_iterations
            else f"time cap ({self.max_time_s:g} s)"
        )
        if stable:
            verdict = f"stopped at the {cap}: {figures}"
        else:
            verdict = f"NOT stable: {figures}, stopped at the {cap}"
        return StopDecision(stable, f"{verdict} after {count} samples", value)

    def chunk_size(self, count: int, elapsed_s: float, typical_ns: float | None) -> int:
        """How many calls to take next: about :data:`CHUNK_TIME_S`, never past a boundary.

        A chunk does not cross the minimum count, the time still needed for the minimum time,
        or either cap, so a stable run stops exactly at its minimum.

        Args:
            count: Samples taken so far.
            elapsed_s: Measured time so far.
            typical_ns: A typical call's duration (``None`` if unknown: one call is taken).

        Returns:
            At least 1.
        """
        if typical_ns is None or not typical_ns > 0.0:
            return 1
        per_call_s = typical_ns / 1e9
        size = max(1, round(CHUNK_TIME_S / per_call_s))
        limits = [self.max_iterations - count]
        remaining_s = self.max_time_s - elapsed_s
        limits.append(_calls_for(remaining_s, per_call_s))
        if count < self.min_iterations:
            limits.append(self.min_iterations - count)
        elif elapsed_s < self.min_time_s:
            limits.append(_calls_for(self.min_time_s - elapsed_s, per_call_s))
        return max(1, min(size, *limits))


def _calls_for(seconds: float, per_call_s: float) -> int:
    calls = seconds / per_call_s
    if not math.isfinite(calls):  # no time cap (max_time_s=inf): the count is the only bound
        return sys.maxsize
    # Rounded before the ceiling: 0.05 s / 1 ms is 50.00000000000004 in binary, and is 50 calls.
    return max(1, math.ceil(round(calls, 6)))


@dataclass(frozen=True)
class SampleRun:
    """The samples of one measurement and why it stopped.

    Attributes:
        samples_ns: Every duration taken, in nanoseconds, in order.
        elapsed_s: Measured time by the clock, summed over the chunks.
        decision: Why it stopped.
        chunks: How many chunks it took.
    """

    samples_ns: npt.NDArray[np.float64]
    elapsed_s: float
    decision: StopDecision
    chunks: int


def _take(source: SampleSource, n: int, collected: list[npt.NDArray[np.float64]]) -> None:
    try:
        chunk = np.asarray(source(n), dtype=np.float64)
    except BaseException as exc:
        # Keep what was measured: the caller (and the user) can still see the partial samples,
        # with those of this chunk that a source interrupted part way attached
        # (``chunk_samples_ns``): on a slow call a chunk is most of what was measured.
        taken = list(collected)
        chunk_part = getattr(exc, "chunk_samples_ns", None)
        if chunk_part is not None and len(chunk_part):
            taken.append(np.asarray(chunk_part, dtype=np.float64))
        exc.partial_samples_ns = (  # type: ignore[attr-defined]
            np.concatenate(taken) if taken else np.empty(0)
        )
        raise
    if chunk.shape != (n,):
        raise InvalidArgumentError(
            f"the sample source returned {chunk.shape} samples for {n} calls"
        )
    collected.append(chunk)


def collect(
    source: SampleSource,
    rule: StoppingRule,
    clock: Clock,
    *,
    typical_ns: float | None = None,
) -> SampleRun:
    """Takes samples in chunks until the stopping rule says stop.

    Args:
        source: Runs the work ``n`` times and returns the ``n`` durations in nanoseconds.
        rule: When to stop.
        clock: Seconds from a monotonic origin; the time budget is measured with it.
        typical_ns: A typical duration (from warm-up) to size the first chunk; without it the
            first chunk is one call.

    Returns:
        The samples and the decision.

    Raises:
        Exception: Whatever ``source`` raises, with the samples taken before it attached as
            ``partial_samples_ns``.
        KeyboardInterrupt: On Ctrl-C, wherever it lands, with ``partial_samples_ns`` as above.
    """
    collected: list[npt.NDArray[np.float64]] = []
    count, elapsed, chunks = 0, 0.0, 0
    try:
        while True:
            n = rule.chunk_size(count, elapsed, typical_ns)
            start = clock()
            _take(source, n, collected)
            elapsed += clock() - start
            count += n
            chunks += 1
            samples = np.concatenate(collected) if len(collected) > 1 else collected[0]
            collected = [samples]
            typical_ns = float(np.median(samples))
            decision = rule.decide(samples, elapsed)
            if decision is not None:
                logger.debug("measurement stopped: %s", decision.reason)
                return SampleRun(samples, elapsed, decision, chunks)
    except KeyboardInterrupt as exc:
        # Ctrl-C between chunks (not inside the source): keep the samples all the same.
        if not hasattr(exc, "partial_samples_ns"):
            exc.partial_samples_ns = (  # type: ignore[attr-defined]
                np.concatenate(collected) if collected else np.empty(0)
            )
        raise


@dataclass(frozen=True)
class WarmupPolicy:
    """How to warm up.

    Attributes:
        iterations: Calls made first, whatever happens.
        until_settled: Then keep calling in windows until the median settles.
        tolerance: Settled when a window's median is within this fraction of the previous one.
        max_iterations: Cap on the calls of the settling phase.
        max_time_s: Cap on the time of the settling phase.
    """

    iterations: int = 10
    until_settled: bool = True
    tolerance: float = SETTLE_TOLERANCE
    max_iterations: int = 1000
    max_time_s: float = 10.0

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise InvalidArgumentError(
                f"warmup_iterations must be 0 or more, got {self.iterations}"
            )
        if not self.tolerance > 0.0:
            raise InvalidArgumentError(f"settle tolerance must be above 0, got {self.tolerance}")


@dataclass(frozen=True)
class WarmupResult:
    """What warm-up did.

    Attributes:
        iterations: Calls made in all.
        settled: ``True``/``False`` when settling was asked for; ``None`` when it was not.
        samples_ns: The warm-up durations (not part of the measurement).
    """

    iterations: int
    settled: bool | None
    samples_ns: npt.NDArray[np.float64]


def _window(typical_ns: float | None) -> int:
    if typical_ns is None or not typical_ns > 0.0:
        return WARMUP_WINDOW_MIN_CALLS
    calls = round(WARMUP_WINDOW_S / (typical_ns / 1e9))
    return int(min(max(calls, WARMUP_WINDOW_MIN_CALLS), WARMUP_WINDOW_MAX_CALLS))


def warm_up(source: SampleSource, policy: WarmupPolicy, clock: Clock) -> WarmupResult:
    """Runs the warm-up calls, then (if asked) windows until the median settles.

    Args:
        source: As for :func:`collect`.
        policy: How long to warm up.
        clock: As for :func:`collect`.

    Returns:
        The calls made and whether the median settled.
    """
    collected: list[npt.NDArray[np.float64]] = []
    if policy.iterations:
        _take(source, policy.iterations, collected)
    if not policy.until_settled:
        samples = collected[0] if collected else np.empty(0)
        return WarmupResult(int(samples.size), None, samples)
    typical = float(np.median(collected[0])) if collected else None
    window = _window(typical)
    previous = (
        float(np.median(collected[0][-window:]))
        if collected and collected[0].size >= window
        else None
    )
    settled, calls, start = False, 0, clock()
    while calls < policy.max_iterations and clock() - start < policy.max_time_s:
        n = min(window, policy.max_iterations - calls)
        _take(source, n, collected)
        calls += n
        median = float(np.median(collected[-1]))
        if previous is not None and abs(median - previous) <= policy.tolerance * previous:
            settled = True
            break
        previous = median
        window = _window(median)
    samples = np.concatenate(collected)
    if not settled:
        logger.warning(
            "warm-up did not settle within %d calls / %.1f s (last windows' medians differ by "
            "more than %.0f%%); measuring anyway",
            policy.max_iterations,
            policy.max_time_s,
            policy.tolerance * 100,
        )
    return WarmupResult(int(samples.size), settled, samples)
