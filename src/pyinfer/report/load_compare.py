"""Two load reports compared: the levels both measured, their capacities, and the CI gate.

Levels are matched by the load they offered (an open-loop rate or a concurrency). A level is
measured once, so its P99 change cannot be told apart from run-to-run noise; the gate judges it
on the one run each and says so. A capacity search carries the interval it is sure of
(``[capacity_qps, failed_qps)``, every trial at the lower end passed), so two of them are judged
with confidence: slower only when the intervals say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.load import CapacitySearch, LatencyPercentiles, LoadReport

__all__ = ["CapacityChange", "LevelChange", "LoadComparison", "compare_loads"]

#: What the gate says of a level: one run per side.
ONE_RUN_NOTE = (
    "one run per level cannot tell a change from run-to-run variation: the P99 changes are of "
    "one run each (a capacity search on both, --find-capacity, is judged on its repeated trials)"
)


@dataclass(frozen=True)
class LevelChange:
    """One level both reports measured.

    Attributes:
        load: The level's label (``"100 qps"``, ``"c=4"``).
        p99_before_ms: The reference's P99 (``None``: no request completed).
        p99_after_ms: The later report's P99.
        achieved_before_qps: The reference's achieved rate.
        achieved_after_qps: The later report's achieved rate.
        dropped_before: The reference's dropped requests.
        dropped_after: The later report's dropped requests.
    """

    load: str
    p99_before_ms: float | None
    p99_after_ms: float | None
    achieved_before_qps: float
    achieved_after_qps: float
    dropped_before: int
    dropped_after: int

    @property
    def ratio(self) -> float | None:
        """P99 after / before (``None`` when either is missing or the reference's is 0)."""
        if self.p99_before_ms is None or self.p99_after_ms is None or self.p99_before_ms <= 0:
            return None
        return self.p99_after_ms / self.p99_before_ms

    def regression(self, threshold: float) -> bool:
        """Whether the later P99 is above the reference's by more than ``threshold``.

        Judged on the one run each; a later report that completed no request where the
        reference did is slower.
        """
        if self.p99_after_ms is None:
            return self.p99_before_ms is not None
        ratio = self.ratio
        return ratio is not None and ratio > 1.0 + threshold


@dataclass(frozen=True)
class CapacityChange:
    """Two capacity searches: the interval each is sure of.

    Attributes:
        p99_budget_before_ms: The reference's budget.
        p99_budget_after_ms: The later report's budget.
        before_qps: The reference's capacity (passed every trial at it).
        before_failed_qps: The lowest rate the reference failed (``None``: none failed).
        after_qps: The later report's capacity.
        after_failed_qps: The lowest rate the later report failed.
    """

    p99_budget_before_ms: float
    p99_budget_after_ms: float
    before_qps: float
    before_failed_qps: float | None
    after_qps: float
    after_failed_qps: float | None

    @classmethod
    def of(cls, before: CapacitySearch, after: CapacitySearch) -> CapacityChange:
        """The change from ``before``'s search to ``after``'s."""
        return cls(
            before.p99_budget_ms, after.p99_budget_ms, before.capacity_qps, before.failed_qps,
            after.capacity_qps, after.failed_qps,
        )  # fmt: skip

    def regression(self, threshold: float) -> bool:
        """Whether the later capacity is surely below the reference's beyond ``threshold``.

        Surely: the most it can be (below its failed rate) times ``1 + threshold`` is at most
        the least the reference's can be (its capacity).
        """
        return (
            self.after_failed_qps is not None
            and self.after_failed_qps * (1.0 + threshold) <= self.before_qps
        )

    def decidable(self, threshold: float) -> bool:
        """Whether the intervals decide the gate either way.

        Surely slower beyond ``threshold``, or surely not: the least the later capacity can
        be, times ``1 + threshold``, is at least the most the reference's can be.
        """
        if self.regression(threshold):
            return True
        return (
            self.before_failed_qps is not None
            and self.after_qps * (1.0 + threshold) >= self.before_failed_qps
        )

    def describe(self) -> str:
        """``"[193.0, 202.2) -> [150.0, 160.0) qps"``: the two intervals."""

        def interval(low: float, high: float | None) -> str:
            return f"[{low:.1f}, {'inf' if high is None else f'{high:.1f}'})"

        return (
            f"{interval(self.before_qps, self.before_failed_qps)} -> "
            f"{interval(self.after_qps, self.after_failed_qps)} qps"
        )


@dataclass(frozen=True)
class LoadComparison:
    """A later load report against the reference.

    Attributes:
        levels: The levels both measured, in the reference's order.
        capacity: The two capacity searches (``None`` unless both ran one).
        notes: What makes the two less than like for like.
    """

    levels: tuple[LevelChange, ...]
    capacity: CapacityChange | None
    notes: tuple[str, ...]

    def slower(self, threshold: float) -> list[str]:
        """What is slower beyond ``threshold``, one line each (empty: nothing)."""
        limit = f"{threshold * 100:g}%"
        lines = []
        for lv in self.levels:
            if lv.regression(threshold):
                change = (
                    "no request completed"
                    if lv.ratio is None
                    else f"P99 {lv.p99_before_ms:.2f} -> {lv.p99_after_ms:.2f} ms "
                    f"({lv.ratio:.2f}x, beyond {limit})"
                )
                lines.append(f"{lv.load}: {change}, in one run each")
        if self.capacity is not None and self.capacity.regression(threshold):
            lines.append(
                f"capacity: {self.capacity.describe()}, lower beyond {limit} with the "
                "confidence of both searches"
            )
        return lines

    def undecided(self, threshold: float) -> list[str]:
        """What the gate cannot judge, one line each (empty: everything was judged)."""
        lines = [
            f"{lv.load}: no request completed in either report"
            for lv in self.levels
            if lv.p99_before_ms is None and lv.p99_after_ms is None
        ]
        if self.capacity is not None and not self.capacity.decidable(threshold):
            lines.append(
                f"capacity: the intervals {self.capacity.describe()} overlap the "
                f"{threshold * 100:g}% limit (re-run the searches with a finer precision)"
            )
        return lines

    def to_text(self) -> str:
        """The capacity line and the notes (the levels' table is :func:`load_comparison`)."""
        parts = []
        if self.capacity is not None:
            parts.append(f"Capacity: {self.capacity.describe()}")
        parts += [f"Note: {note}" for note in self.notes]
        return "\n".join(parts)

    def to_dict(self, threshold: float | None) -> dict[str, object]:
        """A JSON-ready dict; ``regression`` fields are ``None`` without a threshold."""

        def judged(record: LevelChange | CapacityChange) -> bool | None:
            return None if threshold is None else record.regression(threshold)

        levels = [
            {**asdict(lv), "p99_ratio": lv.ratio, "regression": judged(lv)} for lv in self.levels
        ]
        capacity = None
        if self.capacity is not None:
            capacity = {
                **asdict(self.capacity),
                "regression": judged(self.capacity),
                "decidable": None if threshold is None else self.capacity.decidable(threshold),
            }
        return {"levels": levels, "capacity": capacity, "notes": list(self.notes)}


def _p99(p: LatencyPercentiles | None) -> float | None:
    return None if p is None else p.p99_ms


def compare_loads(before: LoadReport, after: LoadReport) -> LoadComparison:
    """The levels both reports measured (matched by load) and their capacity searches.

    Raises:
        InvalidArgumentError: If the reports share no level and do not both hold a capacity
            search.
    """
    theirs = {lv.label: lv for lv in after.levels}
    shared = [(a, theirs[a.label]) for a in before.levels if a.label in theirs]
    both = before.capacity is not None and after.capacity is not None
    if not shared and not both:
        raise InvalidArgumentError(
            f"the load reports of {before.target} and {after.target} share no load level "
            f"({', '.join(lv.label for lv in before.levels) or 'none'} against "
            f"{', '.join(lv.label for lv in after.levels) or 'none'}) and do not both hold a "
            "capacity search"
        )
    notes = [ONE_RUN_NOTE] if shared else []
    for a, b in shared:
        setup = ("workers", "max_batch", "max_queue_delay_ms", "arrival")
        differ = [
            f"{k} {getattr(a, k)} vs {getattr(b, k)}"
            for k in setup
            if getattr(a, k) != getattr(b, k)
        ]
        if differ:
            notes.append(f"{a.label} was served differently: {', '.join(differ)}")
    if before.target != after.target:
        notes.append(f"the targets differ ({before.target} vs {after.target})")
    capacity = None
    if before.capacity is not None and after.capacity is not None:
        capacity = CapacityChange.of(before.capacity, after.capacity)
        if capacity.p99_budget_before_ms != capacity.p99_budget_after_ms:
            notes.append(
                f"the capacity budgets differ (P99 <= {capacity.p99_budget_before_ms:g} ms vs "
                f"{capacity.p99_budget_after_ms:g} ms)"
            )
    levels = tuple(
        LevelChange(
            a.label,
            _p99(a.latency),
            _p99(b.latency),
            a.achieved_qps,
            b.achieved_qps,
            a.dropped,
            b.dropped,
        )
        for a, b in shared
    )
    return LoadComparison(levels, capacity, tuple(notes))
