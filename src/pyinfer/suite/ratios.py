"""Latency ratios between two entries measured in several runs, with a 95% interval.

Two formats measured in N fresh processes each give N run medians a side; their ratio is
estimated on the run medians, not on the per-call samples (calls within one process are not
independent of each other, runs are). :func:`ratio_between` gives the Hodges-Lehmann estimate of
the ratio (the median of every after/before pair of run medians) and its distribution-free 95%
interval from the exact Mann-Whitney distribution (Bauer 1972; R's ``wilcox.test(conf.int =
TRUE)``): with too few runs for such an interval (fewer than 4 a side) it has none.

# TODO(lead, issue 15): switch ratio_between to the shared run-median ratio of
# pyinfer.report (the statistics helper's Hodges-Lehmann + Mann-Whitney interval) at merge;
# this local version exists only because that one is not on this branch yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyinfer.errors import InvalidArgumentError

__all__ = ["CONFIDENCE", "LatencyRatio", "min_runs_for_interval", "ratio_between"]

#: The intervals' confidence level.
CONFIDENCE = 0.95


def _run_medians(values: Sequence[float], side: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise InvalidArgumentError(f"ratio_between: no {side} run medians given")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise InvalidArgumentError(
            f"ratio_between: {side} run medians must be finite and above 0, got "
            f"{[float(v) for v in array]}"
        )
    return array


def _u_counts(m: int, n: int) -> np.ndarray:
    """How many of the C(m+n, m) orderings give each value 0..m*n of the Mann-Whitney U.

    The coefficients of the Gaussian binomial coefficient [m+n choose m] in q, built by the
    recurrence f(i, j) = f(i-1, j) shifted by j + f(i, j-1) over a table of polynomials.
    """
    # table[j] holds f(i, j) for the current i; f(0, j) = 1 (U = 0 only).
    table = [np.ones(1, dtype=object) for _ in range(n + 1)]
    for _i in range(1, m + 1):
        row = [np.ones(1, dtype=object)]  # f(i, 0) = 1
        for j in range(1, n + 1):
            shifted = np.concatenate([np.zeros(j, dtype=object), table[j]])
            left = row[j - 1]
            size = max(len(shifted), len(left))
            total = np.zeros(size, dtype=object)
            total[: len(shifted)] += shifted
            total[: len(left)] += left
            row.append(total)
        table = row
    return table[n]


def _interval_rank(m: int, n: int, confidence: float) -> int:
    """The rank k of the interval's ends among the m*n pairwise differences (0: none).

    The largest k with P(U <= k - 1) <= (1 - confidence) / 2 under the exact null distribution.
    """
    counts = _u_counts(m, n)
    total = math.comb(m + n, m)
    tail = (1.0 - confidence) / 2.0
    cumulative = 0
    k = 0
    for u, count in enumerate(counts):
        cumulative += int(count)
        if cumulative / total > tail:
            break
        k = u + 1
    return k


def min_runs_for_interval(confidence: float = CONFIDENCE) -> int:
    """The fewest runs a side (the same on both) that give a ratio its interval (4 at 95%)."""
    n = 1
    while _interval_rank(n, n, confidence) == 0:
        n += 1
    return n


def ratio_between(
    before_run_medians: Sequence[float], after_run_medians: Sequence[float]
) -> tuple[float, float | None, float | None]:
    """The ratio after/before of two sets of run medians, with its 95% interval.

    Args:
        before_run_medians: The reference's run medians (any unit, the same on both sides).
        after_run_medians: The other side's.

    Returns:
        The Hodges-Lehmann estimate of the ratio (the exponential of the median of every
        ``log(after_j) - log(before_i)``) and the ends of its 95% interval (the k-th smallest
        and largest of those differences, k from the exact Mann-Whitney distribution); the
        ends are ``None`` when there are too few runs for a 95% interval (fewer than 4 a side
        when both sides have as many).

    Raises:
        InvalidArgumentError: If a side is empty, or a median is not finite and above 0.
    """
    before = np.log(_run_medians(before_run_medians, "before"))
    after = np.log(_run_medians(after_run_medians, "after"))
    differences = np.sort((after[None, :] - before[:, None]).ravel())
    ratio = float(math.exp(float(np.median(differences))))
    k = _interval_rank(before.size, after.size, CONFIDENCE)
    if k == 0:
        return ratio, None, None
    low = float(math.exp(float(differences[k - 1])))
    high = float(math.exp(float(differences[differences.size - k])))
    return ratio, low, high


@dataclass(frozen=True)
class LatencyRatio:
    """An entry's latency against a reference entry's, over their run medians.

    Attributes:
        reference: The row it is compared with (``"PyTorch (FP32)"``).
        ratio: This entry's latency over the reference's (below 1: faster): the
            Hodges-Lehmann estimate over the two sets of run medians.
        low: Lower end of the ratio's 95% interval (``None``: too few runs for one).
        high: Upper end (``None`` likewise).
        runs: This entry's runs.
        reference_runs: The reference's runs.
    """

    reference: str
    ratio: float
    low: float | None
    high: float | None
    runs: int
    reference_runs: int

    @classmethod
    def between(
        cls, reference: str, reference_medians: Sequence[float], medians: Sequence[float]
    ) -> LatencyRatio:
        """The ratio of ``medians`` (this entry's runs) to ``reference_medians``."""
        ratio, low, high = ratio_between(reference_medians, medians)
        return cls(reference, ratio, low, high, len(medians), len(reference_medians))

    @property
    def has_interval(self) -> bool:
        """Whether the ratio has its 95% interval."""
        return self.low is not None and self.high is not None

    def text(self) -> str:
        """``0.62x (0.58-0.66)``, or ``0.62x`` without an interval."""
        if self.low is None or self.high is None:
            return f"{self.ratio:.2f}x"
        return f"{self.ratio:.2f}x ({self.low:.2f}-{self.high:.2f})"
