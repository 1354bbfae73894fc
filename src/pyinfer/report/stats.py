"""Statistics the profiler and its reports rest on: pure functions of numpy arrays.

* which percentiles a sample count supports (:func:`percentile_supported`);
* the two stability measures of the stopping rule: coefficient of variation and the relative
  half-width of a distribution-free confidence interval of the median;
* the Mann-Whitney U test (tie-corrected, normal approximation) that tells a regression from
  noise in :func:`pyinfer.report.compare`;
* the knee of a throughput-against-batch-size curve.

Nothing here reads a clock or runs a model, so every function is tested on exact values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pyinfer.errors import InvalidArgumentError

__all__ = [
    "KNEE_FRACTION",
    "MIN_SAMPLES_BEYOND_PERCENTILE",
    "coefficient_of_variation",
    "knee_index",
    "mann_whitney_u",
    "median_ci_relative",
    "min_samples_for_percentile",
    "percentile_supported",
]

#: A percentile p is reported as supported only when at least this many samples lie beyond it,
#: i.e. ``n * (1 - p/100) >= 10``: p95 needs 200 samples, p99 1000, p99.9 10000. With fewer,
#: the value is set by a handful of the slowest samples (p99 from 50 samples is the maximum) and
#: moves by the full spread of the tail from one run to the next. Ten is the usual rule of thumb
#: for a stable tail estimate (HdrHistogram's and perf_analyzer's reporting use the same order).
MIN_SAMPLES_BEYOND_PERCENTILE = 10

#: The knee of a throughput curve is the smallest batch size that reaches this fraction of the
#: highest throughput measured: past it, doubling the batch buys at most ~10% more items per
#: second while the latency of each batch keeps growing.
KNEE_FRACTION = 0.9

# Two-sided 95% normal quantile, for the confidence interval of the median.
_Z_95 = 1.959963984540054


def min_samples_for_percentile(p: float) -> int:
    """The sample count from which percentile ``p`` is supported (see the constant above).

    Args:
        p: The percentile rank, in ``[0, 100)``.

    Returns:
        ``ceil(10 / (1 - p/100))``: 20 for the median, 200 for p95, 1000 for p99.

    Raises:
        InvalidArgumentError: If ``p`` is outside ``[0, 100)``.
    """
    if not 0.0 <= p < 100.0:
        raise InvalidArgumentError(f"percentile rank must be in [0, 100), got {p}")
    # Rounded to 6 digits first: 100 - 99.9 is 0.0999999999999943 in binary, and the count
    # must come out as 10000, not 10001.
    return math.ceil(round(MIN_SAMPLES_BEYOND_PERCENTILE * 100.0 / (100.0 - p), 6))


def percentile_supported(p: float, count: int) -> bool:
    """Whether ``count`` samples are enough to report percentile ``p`` as a measurement."""
    return count >= min_samples_for_percentile(p)


def _as_samples(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise InvalidArgumentError(f"{what}: no samples")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(f"{what}: samples must be finite numbers")
    return arr


def coefficient_of_variation(values: npt.ArrayLike) -> float:
    """Sample standard deviation (ddof=1) over the mean; ``inf`` for fewer than 2 samples.

    Raises:
        InvalidArgumentError: If there are no samples or one is not finite.
    """
    arr = _as_samples(values, "coefficient of variation")
    mean = float(arr.mean())
    if arr.size < 2 or mean <= 0.0:
        return math.inf
    return float(arr.std(ddof=1)) / mean


def median_ci_relative(values: npt.ArrayLike) -> float:
    """Half-width of a 95% confidence interval of the median, relative to the median.

    The interval is distribution-free: the order statistics at ranks ``n/2 -+ 1.96 sqrt(n)/2``
    (the binomial(n, 1/2) normal approximation), so it holds for the skewed, heavy-tailed
    distributions latencies have. It shrinks like ``1/sqrt(n)``, so unlike the coefficient of
    variation it always converges when more samples are taken.

    Args:
        values: The samples.

    Returns:
        ``(x_hi - x_lo) / 2 / median``; ``inf`` below 3 samples.

    Raises:
        InvalidArgumentError: If there are no samples or one is not finite.
    """
    arr = np.sort(_as_samples(values, "median confidence interval"))
    n = arr.size
    if n < 3:
        return math.inf
    half = _Z_95 * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half))
    hi = min(n - 1, math.ceil(n / 2.0 + half) - 1)
    median = float(np.median(arr))
    if median <= 0.0:
        return math.inf
    return float(arr[hi] - arr[lo]) / 2.0 / median


def _average_ranks(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """1-based ranks with ties given their average rank, and sum(t^3 - t) over tie groups."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.concatenate((starts, [ordered.size])))
    # Average rank of a run that starts at s (0-based) with t members: s + (t + 1) / 2.
    run_ranks = starts + (counts + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, counts)
    tie_term = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    return ranks, tie_term


def mann_whitney_u(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of whether ``a`` and ``b`` come from one distribution.

    Normal approximation with the tie correction of the variance and a continuity correction of
    0.5, the same definition as ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")``.

    Args:
        a: First sample set (at least one value).
        b: Second sample set (at least one value).

    Returns:
        ``(u, p_value)``: U of ``a`` (the number of pairs where a's value is larger, ties
        counting one half) and the two-sided p-value; 1.0 when every value is equal.

    Raises:
        InvalidArgumentError: If either set is empty or holds a non-finite value.
    """
    x = _as_samples(a, "Mann-Whitney U (first set)")
    y = _as_samples(b, "Mann-Whitney U (second set)")
    n1, n2 = x.size, y.size
    n = n1 + n2
    ranks, tie_term = _average_ranks(np.concatenate((x, y)))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0.0:
        return u1, 1.0
    z = max(abs(u1 - mu) - 0.5, 0.0) / math.sqrt(variance)
    return u1, min(1.0, math.erfc(z / math.sqrt(2.0)))


def knee_index(throughputs: Sequence[float], fraction: float = KNEE_FRACTION) -> int:
    """Index of the first point whose throughput reaches ``fraction`` of the highest.

    Args:
        throughputs: Throughput per point, in the order of increasing batch size.
        fraction: The share of the maximum that counts as reached, in ``(0, 1]``.

    Returns:
        The index of the knee.

    Raises:
        InvalidArgumentError: If there are no points or ``fraction`` is outside ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise InvalidArgumentError(f"knee fraction must be in (0, 1], got {fraction}")
    if not throughputs:
        raise InvalidArgumentError("knee of an empty curve")
    best = max(throughputs)
    return next(i for i, t in enumerate(throughputs) if t >= fraction * best)
