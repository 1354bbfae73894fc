"""Latency ratios between two entries measured in several runs, with a 95% interval.

Two formats measured in N fresh processes each give N run medians a side; their ratio is
estimated on the run medians, not on the per-call samples (calls within one process are not
independent of each other, runs are), with the Hodges-Lehmann estimate and the distribution-free
interval of :func:`pyinfer.report.stats.ratio_interval`: with too few runs for a 95% interval
(fewer than 4 a side) it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyinfer.report.comparison import MIN_RUNS_FOR_INTERVAL
from pyinfer.report.stats import ratio_interval

__all__ = ["CONFIDENCE", "LatencyRatio", "min_runs_for_interval", "ratio_between"]

#: The intervals' confidence level.
CONFIDENCE = 0.95


def min_runs_for_interval() -> int:
    """The fewest runs a side (the same on both) that give a ratio its 95% interval: 4."""
    return MIN_RUNS_FOR_INTERVAL


def ratio_between(
    before_run_medians: Sequence[float], after_run_medians: Sequence[float]
) -> tuple[float, float | None, float | None]:
    """The ratio after/before of two sets of run medians, with its 95% interval.

    Returns:
        The Hodges-Lehmann estimate and the ends of its 95% interval (``None`` when there are
        too few runs for one).

    Raises:
        InvalidArgumentError: If a side is empty, or a median is not finite and above 0.
    """
    found = ratio_interval(list(before_run_medians), list(after_run_medians), CONFIDENCE)
    return found.estimate, found.low, found.high


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
