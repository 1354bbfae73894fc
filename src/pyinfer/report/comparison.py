"""Comparing two reports: per-metric change and a Mann-Whitney U test on the raw samples.

So a regression can be told from noise: a change is called faster or slower only when it is
both significant and larger than the profiler's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfer.report.formatting import MB
from pyinfer.report.stats import mann_whitney_u

if TYPE_CHECKING:
    from pyinfer.report.records import ProfileReport

#: p-value under which :func:`compare` calls a difference significant.
SIGNIFICANCE_LEVEL = 0.05
#: Smallest change of the median that :func:`compare` reports as faster or slower, even when
#: significant: with thousands of samples a 0.3% shift is "significant" yet below what the
#: profiler claims to resolve (2% at the median), so it is called no significant change.
MIN_MEANINGFUL_CHANGE = 0.02


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
class Comparison:
    """The difference between two reports.

    Attributes:
        changes: Per-metric changes.
        u_statistic: Mann-Whitney U of the first report's samples.
        p_value: Two-sided p-value of the U test on the raw latency samples.
        verdict: ``"faster"``, ``"slower"`` or ``"no significant change"`` (for the second
            report, relative to the first).
        notes: What makes the two less than like for like (different batch sizes), if anything.
    """

    changes: tuple[MetricChange, ...]
    u_statistic: float
    p_value: float
    verdict: str
    notes: tuple[str, ...] = ()

    def to_text(self) -> str:
        """A small table of the changes and the verdict."""
        lines = [f"{'metric':<16}{'before':>12}{'after':>12}{'change':>10}"]
        for c in self.changes:
            lines.append(
                f"{c.name + ' (' + c.unit + ')':<16}{c.before:>12.4g}{c.after:>12.4g}"
                f" {f'{c.change_percent:+.1f}%':>9}"
            )
        lines.append(f"Mann-Whitney U p-value: {self.p_value:.3g} -> {self.verdict}")
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def _change(name: str, unit: str, before: float, after: float, lower: bool) -> MetricChange:
    change = (after - before) / before * 100.0 if before else math.nan
    return MetricChange(name, unit, before, after, change, lower)


def compare(before: ProfileReport, after: ProfileReport) -> Comparison:
    """How ``after`` differs from ``before``, and whether the latency change is real.

    The raw latency samples of the two reports are compared with a two-sided Mann-Whitney U
    test. The verdict is ``"faster"`` or ``"slower"`` only when the p-value is under
    :data:`SIGNIFICANCE_LEVEL` *and* the median moved by at least :data:`MIN_MEANINGFUL_CHANGE`;
    otherwise ``"no significant change"``. Reports of different models or batch sizes are
    compared all the same, with a note saying so.

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
    u, p = mann_whitney_u(before.latency.samples_ns, after.latency.samples_ns)
    shift = (b.median_ms - a.median_ms) / a.median_ms
    if p < SIGNIFICANCE_LEVEL and abs(shift) >= MIN_MEANINGFUL_CHANGE:
        verdict = "faster" if shift < 0 else "slower"
    else:
        verdict = "no significant change"
    notes = []
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
    return Comparison(tuple(changes), u, p, verdict, tuple(notes))
