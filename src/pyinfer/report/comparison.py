"""Comparing two reports: the change of each metric, and a verdict on the run medians.

Whether B is slower than A is decided on repetition-level values, the medians of runs in
fresh processes, never on one process's per-call samples: calls within a run are
autocorrelated and share the run's mode (memory layout, core placement, the machine's other
work), so thousands of them make any drift between two runs look "significant". The verdict
is the ratio of the run medians, B over A, with a distribution-free 95% interval
(:func:`pyinfer.report.stats.ratio_interval`); with one run per side there is no telling a
change from run-to-run variation, and the comparison says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.codec import JsonRecord
from pyinfer.report.formatting import MB
from pyinfer.report.stats import RatioInterval, ratio_interval

if TYPE_CHECKING:
    from pyinfer.report.records import ProfileReport

__all__ = [
    "FASTER",
    "MIN_MEANINGFUL_CHANGE",
    "MIN_RUNS_FOR_INTERVAL",
    "NO_CHANGE",
    "SIGNIFICANCE_LEVEL",
    "SLOWER",
    "UNDECIDED",
    "Comparison",
    "MetricChange",
    "compare",
    "run_medians",
]

#: The verdict's interval is the ``1 - SIGNIFICANCE_LEVEL`` (95%) one.
SIGNIFICANCE_LEVEL = 0.05
#: Smallest change of the latency that :func:`compare` reports as faster or slower, even when
#: the interval excludes no change: the ratio must be beyond 1.02 (slower) or 1/1.02 (faster,
#: the same factor the other way), as a shift under 2% is below what the profiler claims to
#: resolve at the median.
MIN_MEANINGFUL_CHANGE = 0.02
#: Runs per side from which a 95% interval always exists (4 + 4: the interval is the range of
#: the 16 pairwise ratios, which misses the truth with probability 2/70 < 5%; 3 + 3 cannot
#: reach 95%).
MIN_RUNS_FOR_INTERVAL = 4

#: Verdicts, for the second report relative to the first.
FASTER = "faster"
SLOWER = "slower"
NO_CHANGE = "no significant change"
UNDECIDED = "cannot tell from run-to-run noise"


@dataclass(frozen=True)
class MetricChange:
    """One metric of two reports.

    Attributes:
        name: The metric (``"median"``, ``"throughput"``...).
        unit: Its unit.
        before: Value in the first report.
        after: Value in the second.
        change_percent: ``(after - before) / before * 100``.
        lower_is_better: Whether a decrease is an improvement.
    """

    name: str
    unit: str
    before: float
    after: float
    change_percent: float
    lower_is_better: bool


@dataclass(frozen=True)
class Comparison(JsonRecord):
    """The difference between two reports.

    Attributes:
        changes: Per-metric changes.
        verdict: :data:`FASTER`, :data:`SLOWER`, :data:`NO_CHANGE` or :data:`UNDECIDED` (for
            the second report, relative to the first).
        ratio: Latency of the second over the first: the Hodges-Lehmann ratio of the run
            medians with repetitions on both sides, else the ratio of the two medians.
        ratio_low: Lower end of the 95% interval of ``ratio`` (``None``: undecidable, too few
            runs).
        ratio_high: Upper end (``None`` likewise).
        runs_before: Runs behind the first report (1 without repetitions).
        runs_after: Runs behind the second.
        summary: The verdict as one line, with the effect size and its interval.
        notes: What makes the two less than like for like (different batch sizes), and what
            would decide an undecided comparison.
        slower_bound: The one-sided 95% lower confidence bound of ``ratio`` (the low end of
            its two-sided 90% interval): the second report is slower than this with 95%
            confidence. :meth:`regression` tests it (``None``: too few runs).
    """

    changes: tuple[MetricChange, ...]
    verdict: str
    ratio: float
    ratio_low: float | None
    ratio_high: float | None
    runs_before: int
    runs_after: int
    summary: str
    notes: tuple[str, ...] = ()
    slower_bound: float | None = None

    JSON_WHAT = "comparison"
    JSON_ROOT = "comparison"

    @property
    def decidable(self) -> bool:
        """Whether both sides had enough runs for a 95% interval of the ratio."""
        return self.ratio_low is not None and self.ratio_high is not None

    def regression(self, threshold: float) -> bool:
        """Whether the second report is slower beyond ``threshold``, with 95% confidence.

        A one-sided test, as the question is: the one-sided 95% lower bound of the ratio
        (:attr:`slower_bound`) must be above ``1 + threshold``. (The low end of the two-sided
        95% interval shown in the verdict is a 97.5% one-sided bound: testing it would ask
        for more confidence than said and miss real slowdowns.)

        Args:
            threshold: The slowdown tolerated, as a fraction (0.05: 5%), 0 or more.

        Returns:
            ``True`` when the one-sided bound is above ``1 + threshold``; ``False`` when it is
            not, and when the comparison is undecidable (see :attr:`decidable`).

        Raises:
            InvalidArgumentError: If ``threshold`` is negative or not finite.
        """
        if not 0.0 <= threshold < math.inf:
            raise InvalidArgumentError(
                f"regression threshold must be 0 or more and finite, got {threshold}"
            )
        bound = self.slower_bound
        return self.decidable and bound is not None and bound > 1.0 + threshold

    def to_text(self) -> str:
        """A small table of the changes, the verdict line and the notes."""
        lines = [f"{'metric':<16}{'before':>12}{'after':>12}{'change':>10}"]
        for c in self.changes:
            lines.append(
                f"{c.name + ' (' + c.unit + ')':<16}{c.before:>12.4g}{c.after:>12.4g}"
                f" {f'{c.change_percent:+.1f}%':>9}"
            )
        lines.append(f"Verdict: {self.summary}")
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def _change(name: str, unit: str, before: float, after: float, lower: bool) -> MetricChange:
    change = (after - before) / before * 100.0 if before else math.nan
    return MetricChange(name, unit, before, after, change, lower)


def run_medians(report: ProfileReport) -> tuple[float, ...]:
    """The medians of the runs behind a report, in ms: one per repetition, or its median."""
    if report.repetitions is not None:
        return report.repetitions.run_medians_ms
    return (report.latency.stats.median_ms,)


def _median_ms(report: ProfileReport) -> float:
    if report.repetitions is not None:
        return report.repetitions.median_ms
    return report.latency.stats.median_ms


def _names(before: ProfileReport, after: ProfileReport) -> tuple[str, str]:
    """What the verdict calls the two: the models, the formats, or before and after."""
    if before.model != after.model:
        return before.model, after.model
    if before.label != after.label:
        return before.label, after.label
    return "before", "after"


def _times(*values: float) -> list[str]:
    """Ratios printed alike: 2 decimals, 3 when every one is within 10% of 1."""
    digits = 3 if all(0.9 < v < 1.1 for v in values) else 2
    return [f"{v:.{digits}f}" for v in values]


def _decided(interval: RatioInterval, names: tuple[str, str]) -> tuple[str, str]:
    """The verdict and its line, from a bounded interval."""
    assert interval.low is not None
    assert interval.high is not None
    a, b = names
    runs = f"over {interval.before_count}+{interval.after_count} runs"
    if interval.low > 1.0 + MIN_MEANINGFUL_CHANGE:
        est, low, high = _times(interval.estimate, interval.low, interval.high)
        return SLOWER, f"{b} is {est}x slower than {a}, 95% interval {low}-{high}x, {runs}"
    if interval.high < 1.0 / (1.0 + MIN_MEANINGFUL_CHANGE):
        # As a speed-up: before over after, so the interval's ends swap.
        est, low, high = _times(1 / interval.estimate, 1 / interval.high, 1 / interval.low)
        return FASTER, f"{b} is {est}x faster than {a}, 95% interval {low}-{high}x, {runs}"
    est, low, high = _times(interval.estimate, interval.low, interval.high)
    line = f"{NO_CHANGE}: {b}/{a} latency {est}x, 95% interval {low}-{high}x, {runs}"
    if interval.low > 1.0 or interval.high < 1.0:
        line += f" (a change under the {MIN_MEANINGFUL_CHANGE:.0%} that counts)"
    return NO_CHANGE, line


def _undecided_note(runs_before: int, runs_after: int) -> str:
    if min(runs_before, runs_after) < 2:
        why = "one run per report cannot tell a change from run-to-run variation"
    else:
        why = f"{runs_before}+{runs_after} runs are too few for a 95% interval"
    return (
        f"{why}: profile each with --repeat N to decide (N >= {MIN_RUNS_FOR_INTERVAL} per side "
        "gives a 95% interval)"
    )


def compare(before: ProfileReport, after: ProfileReport) -> Comparison:
    """How ``after`` differs from ``before``, and whether its latency changed beyond noise.

    The verdict is decided on the run medians (:attr:`ProfileReport.repetitions`). With at
    least 2 runs on each side it is the ratio ``after / before`` (Hodges-Lehmann) with its
    distribution-free 95% interval (:func:`~pyinfer.report.stats.ratio_interval`):
    :data:`SLOWER` when the interval lies above ``1 + MIN_MEANINGFUL_CHANGE``, :data:`FASTER`
    when it lies below ``1 / (1 + MIN_MEANINGFUL_CHANGE)``, else :data:`NO_CHANGE`. With one
    run on either side (a report without repetitions counts as one run), or too few runs for
    a 95% interval (3 + 3), it is :data:`UNDECIDED` and gives the ratio of the medians only,
    with a note saying how to decide. Reports of different models or batch sizes are compared
    all the same, with a note saying so.

    Args:
        before: The reference report.
        after: The report to judge.

    Returns:
        The comparison.
    """
    a, b = before.latency.stats, after.latency.stats
    changes = [
        _change("mean", "ms", a.mean_ms, b.mean_ms, True),
        _change("median", "ms", a.median_ms, b.median_ms, True),
        _change("p95", "ms", a.p95_ms, b.p95_ms, True),
        _change("p99", "ms", a.p99_ms, b.p99_ms, True),
        _change("throughput", "FPS", before.throughput_fps, after.throughput_fps, False),
    ]
    if before.memory is not None and after.memory is not None:
        pa, pb = before.memory.peak_activation_bytes, after.memory.peak_activation_bytes
        if pa is not None and pb is not None and pa > 0:
            changes.append(_change("activation", "MB", pa / MB, pb / MB, True))
    medians_a, medians_b = run_medians(before), run_medians(after)
    names = _names(before, after)
    notes = []
    interval = None
    if min(len(medians_a), len(medians_b)) >= 2:
        interval = ratio_interval(medians_a, medians_b, 1.0 - SIGNIFICANCE_LEVEL)
    bound = None
    if interval is not None and interval.bounded:
        verdict, summary = _decided(interval, names)
        ratio, low, high = interval.estimate, interval.low, interval.high
        one_sided = ratio_interval(medians_a, medians_b, 1.0 - 2 * SIGNIFICANCE_LEVEL)
        bound = one_sided.low
    else:
        if interval is not None:
            ratio, how = interval.estimate, "Hodges-Lehmann ratio of the run medians"
        else:
            ratio, how = _median_ms(after) / _median_ms(before), "ratio of the medians"
        verdict, low, high = UNDECIDED, None, None
        (est,) = _times(ratio)
        summary = (
            f"{UNDECIDED}: {names[1]}/{names[0]} latency {est}x ({how}, "
            f"{len(medians_a)}+{len(medians_b)} runs)"
        )
        notes.append(_undecided_note(len(medians_a), len(medians_b)))
    if before.model != after.model:
        notes.append(
            f"the models differ ({before.model} vs {after.model}): the change is between two "
            "models, not two runs of one"
        )
    if before.batch_size != after.batch_size:
        notes.append(
            f"the batch sizes differ ({before.batch_size} vs {after.batch_size}): the latencies "
            "(and the verdict) are of calls of different sizes; throughput is the like-for-like "
            "figure"
        )
    return Comparison(
        changes=tuple(changes),
        verdict=verdict,
        ratio=ratio,
        ratio_low=low,
        ratio_high=high,
        runs_before=len(medians_a),
        runs_after=len(medians_b),
        summary=summary,
        notes=tuple(notes),
        slower_bound=bound,
    )
