"""Statistics the profiler and its reports rest on: pure functions of numpy arrays.

* which percentiles a sample count supports (:func:`percentile_supported`);
* the two stability measures of the stopping rule: coefficient of variation and the relative
  half-width of a distribution-free confidence interval of the median;
* Student's t quantile, for the interval of a median over repeated runs;
* the ratio of two sets of run medians with a distribution-free confidence interval
  (Hodges-Lehmann estimate, Mann-Whitney U distribution) that tells a regression from
  run-to-run noise in :func:`pyinfer.report.compare`;
* the knee of a throughput-against-batch-size curve.

Nothing here reads a clock or runs a model, so every function is tested on exact values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from pyinfer.errors import InvalidArgumentError

__all__ = [
    "EXACT_U_MAX_PAIRS",
    "KNEE_FRACTION",
    "MIN_SAMPLES_BEYOND_PERCENTILE",
    "RatioInterval",
    "coefficient_of_variation",
    "knee_index",
    "median_ci_relative",
    "min_samples_for_percentile",
    "percentile_supported",
    "ratio_interval",
    "student_t_quantile",
    "u_distribution",
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

#: Up to this many pairs (``n * m``) the ratio interval uses the exact distribution of the
#: Mann-Whitney U statistic (a table of ``n * m + 1`` counts, exact in integers); beyond it the
#: normal approximation, whose critical rank already matches the exact one at 20 + 20 runs.
EXACT_U_MAX_PAIRS = 400

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


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError(f"confidence must be between 0 and 1, got {confidence}")


def _t_two_sided_cdf(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` degrees of freedom (``t >= 0``).

    The closed forms for integer degrees of freedom (Abramowitz and Stegun 26.7.3 and
    26.7.4), with ``theta = atan(t / sqrt(df))``: a finite series in ``cos(theta)``.
    """
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):  # cos^(k)(theta) * (2*4*...*(k-1)) / (1*3*...*k)
                term *= c2 * (k - 1) / k
                total += term
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # cos^(k)(theta) * (1*3*...*(k-1)) / (2*4*...*k)
        term *= c2 * (k - 1) / k
        total += term
    return math.sin(theta) * total


def student_t_quantile(confidence: float, df: int) -> float:
    """The two-sided quantile of Student's t: ``t`` with ``P(|T| <= t) = confidence``.

    ``student_t_quantile(0.95, 4)`` is 2.776445 (the 0.975 quantile with 4 degrees of freedom).
    Exact to about 1e-12: bisection on the closed-form distribution function, no table.

    Args:
        confidence: The two-sided coverage, in ``(0, 1)`` (0.95 for a 95% interval).
        df: Degrees of freedom, at least 1 (the number of runs less one).

    Returns:
        The quantile.

    Raises:
        InvalidArgumentError: If ``confidence`` is outside ``(0, 1)`` or ``df`` below 1.
    """
    _check_confidence(confidence)
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise InvalidArgumentError(f"degrees of freedom must be an integer of 1 or more, got {df}")
    low = NormalDist().inv_cdf((1.0 + confidence) / 2.0)  # t is never below the normal
    high = max(2.0 * low, 1.0)
    while _t_two_sided_cdf(high, int(df)) < confidence:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if mid in (low, high):
            break
        if _t_two_sided_cdf(mid, int(df)) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def u_distribution(n: int, m: int) -> npt.NDArray[np.float64]:
    """The exact distribution function of the Mann-Whitney U statistic with no ties.

    ``P(U <= u)`` for ``u = 0 .. n*m`` when two sets of ``n`` and ``m`` values are drawn from
    one continuous distribution. The counts of arrangements with each U are the coefficients
    of the Gaussian binomial ``[n+m choose n]_q = prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i)``,
    computed in exact integers.

    Args:
        n: Size of the first set, at least 1.
        m: Size of the second set, at least 1.

    Returns:
        ``n*m + 1`` cumulative probabilities, the last 1.0.

    Raises:
        InvalidArgumentError: If a size is below 1 or ``n * m`` is over 10,000 (the normal
            approximation is used there).
    """
    if n < 1 or m < 1:
        raise InvalidArgumentError(f"U distribution of sets of {n} and {m} values: need 1 or more")
    if n * m > 10_000:
        raise InvalidArgumentError(f"exact U distribution of {n} x {m} pairs: too many")
    n, m = min(n, m), max(n, m)
    size = n * m + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, n + 1):
        # Times (1 - q^(m+i)): from the top down, so each term reads the old lower one.
        for k in range(size - 1, m + i - 1, -1):
            counts[k] -= counts[k - m - i]
        # Over (1 - q^i): a running sum with stride i, from the bottom up.
        for k in range(i, size):
            counts[k] += counts[k - i]
    total = math.comb(n + m, n)
    cumulative = np.cumsum(np.asarray(counts, dtype=object))
    return np.asarray([c / total for c in cumulative], dtype=np.float64)


@lru_cache(maxsize=256)
def _u_critical_rank(n: int, m: int, confidence: float) -> tuple[int, bool]:
    """The largest ``k`` with ``P(U <= k - 1) <= (1 - confidence) / 2`` (0: none).

    Returned with whether the exact distribution gave it (else the normal approximation).
    """
    tail = (1.0 - confidence) / 2.0
    if n * m <= EXACT_U_MAX_PAIRS:
        cdf = u_distribution(n, m)
        # Rounding guard: a tail probability equal to the level (4/252 vs 0.025 is not, but
        # 1/40 vs 0.025 is) must count as within it.
        return int(np.count_nonzero(cdf <= tail * (1.0 + 1e-12))), True
    z = NormalDist().inv_cdf(1.0 - tail)
    sigma = math.sqrt(n * m * (n + m + 1) / 12.0)
    # P(U <= k - 1) ~ Phi((k - 1 + 0.5 - n*m/2) / sigma) <= tail (continuity-corrected).
    return max(0, math.floor(n * m / 2.0 - z * sigma + 0.5)), False


@dataclass(frozen=True)
class RatioInterval:
    """How many times ``after`` is ``before``, with a distribution-free confidence interval.

    Attributes:
        estimate: The Hodges-Lehmann estimate: the median of every pairwise ratio
            ``after_j / before_i``, computed on the logs (latency is multiplicative).
        low: Lower end of the interval (``None``: too few values for this confidence).
        high: Upper end (``None`` likewise).
        confidence: The interval's coverage (0.95).
        before_count: Values in the first set.
        after_count: Values in the second set.
        rank: ``k``: the interval is the ``k``-th smallest and ``k``-th largest pairwise ratio
            (0 when no interval exists).
        exact: Whether ``k`` came from the exact U distribution (else the normal
            approximation).
    """

    estimate: float
    low: float | None
    high: float | None
    confidence: float
    before_count: int
    after_count: int
    rank: int
    exact: bool

    @property
    def bounded(self) -> bool:
        """Whether there were enough values for an interval at this confidence."""
        return self.low is not None and self.high is not None


def ratio_interval(
    before: npt.ArrayLike, after: npt.ArrayLike, confidence: float = 0.95
) -> RatioInterval:
    """The ratio ``after / before`` of two sets of positive values, with its interval.

    The estimate is the Hodges-Lehmann shift of the logs, exponentiated. The interval is the
    one that inverts the Mann-Whitney U test: ``[d_(k), d_(nm+1-k)]`` of the ``n*m`` sorted
    pairwise log-ratios, where ``k`` is the largest integer with ``P(U <= k-1) <=
    (1 - confidence) / 2``. It assumes only that each set's values are exchangeable draws
    (repetitions in fresh processes), not a normal or unimodal distribution, and covers at
    least ``confidence`` of the time. With the exact distribution, 4 + 4 values give a 95%
    interval and 3 + 3 do not (``low`` and ``high`` are then ``None``).

    Args:
        before: The first set (run medians, for instance), positive and finite.
        after: The second set, positive and finite.
        confidence: The interval's coverage, in ``(0, 1)``.

    Returns:
        The estimate and its interval.

    Raises:
        InvalidArgumentError: If a set is empty or holds a value that is not positive and
            finite, or ``confidence`` is outside ``(0, 1)``.
    """
    _check_confidence(confidence)
    x = _as_samples(before, "ratio interval (first set)")
    y = _as_samples(after, "ratio interval (second set)")
    for values, which in ((x, "first"), (y, "second")):
        if np.any(values <= 0.0):
            raise InvalidArgumentError(f"ratio interval ({which} set): values must be above 0")
    diffs = np.sort((np.log(y)[None, :] - np.log(x)[:, None]).ravel())
    estimate = math.exp(float(np.median(diffs)))
    rank, exact = _u_critical_rank(x.size, y.size, confidence)
    if rank < 1:
        return RatioInterval(estimate, None, None, confidence, x.size, y.size, 0, exact)
    low = math.exp(float(diffs[rank - 1]))
    high = math.exp(float(diffs[diffs.size - rank]))
    return RatioInterval(estimate, low, high, confidence, x.size, y.size, rank, exact)
