"""Load test results: one record per load level, the report that holds them, table and plot.

A *level* is one measurement at one offered load: an open-loop rate (requests per second on a
schedule) or a closed-loop concurrency (N requests kept in flight). Latency is counted from each
request's scheduled time (open loop) or its issue (closed loop), and split into the time spent
waiting for a worker (queueing) and the time the target took (service).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.codec import JsonRecord, check_schema
from pyinfer.report.plots import _figure, _save
from pyinfer.report.tables import box_table

if TYPE_CHECKING:
    from pyinfer.core import LatencyRecorder

__all__ = ["CapacitySearch", "LatencyPercentiles", "LoadLevel", "LoadReport", "plot_load"]

#: The percentile ranks of every latency in a load report.
LOAD_PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0, 99.9)
#: JSON layout version of load reports (major: incompatible change; minor: fields added).
LOAD_SCHEMA_VERSION = "1.1"
LOAD_KIND = "pyinfer load report"


@dataclass(frozen=True)
class LatencyPercentiles:
    """Latency percentiles in milliseconds (estimates from a 3-digit histogram: within 0.1%).

    Attributes:
        count: The requests they describe.
        mean_ms: Mean.
        p50_ms: Median.
        p95_ms: 95th percentile.
        p99_ms: 99th percentile.
        p999_ms: 99.9th percentile.
        max_ms: Largest (exact).
    """

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @classmethod
    def from_recorder(cls, recorder: LatencyRecorder) -> LatencyPercentiles | None:
        """The percentiles of a recorder of nanoseconds (``None`` when it is empty)."""
        if recorder.count == 0:
            return None
        s = recorder.summary(LOAD_PERCENTILES)
        p = [s.percentile(r) * 1e-6 for r in LOAD_PERCENTILES]
        return cls(s.count, s.mean * 1e-6, p[0], p[1], p[2], p[3], s.max * 1e-6)


@dataclass(frozen=True)
class LoadLevel:
    """One measured load level.

    Attributes:
        mode: ``"open"`` (requests on a schedule) or ``"concurrency"`` (closed loop).
        offered_qps: The rate asked for (open loop; ``None`` in concurrency mode).
        concurrency: Requests kept in flight (concurrency mode; ``None`` in open loop).
        arrival: ``"poisson"`` or ``"constant"`` (open loop).
        workers: Worker threads serving requests (one target instance each).
        max_batch: The dynamic batcher's largest batch allowed (1: no batching).
        max_queue_delay_ms: How long the batcher waited at most to fill a batch.
        duration_s: Seconds the level ran: the schedule's duration (open loop) or the time
            of issuing (closed loop), or until the last completion when that is later (and
            when interrupted).
        scheduled: Requests in the schedule (open loop) or issued (closed loop).
        completed: Requests that finished within the timeout.
        dropped: Requests not finished within the timeout of their scheduled time (the
            ones that had not started by then were never run), or never issued because the
            run was stopped.
        errors: Requests whose call raised.
        achieved_qps: Completed requests per second of ``duration_s``: the offered rate when
            every request completed within the schedule, less when they fell behind.
        latency: Completion minus scheduled time (open loop) or minus issue (closed loop).
        queueing: Start of service minus scheduled time: the wait for a free worker.
        service: The call itself (the whole batch's call when batched).
        schedule_error_us: Issue minus scheduled time of the scheduler thread, P50/P99/max in
            microseconds (open loop).
        mean_batch: Mean requests per call: the batch the batcher actually formed.
        largest_batch: The most requests one call served.
        first_error: The first error's text, if any.
        interrupted: Stopped before the schedule ended (Ctrl-C).
    """

    mode: str
    offered_qps: float | None
    concurrency: int | None
    arrival: str | None
    workers: int
    max_batch: int
    max_queue_delay_ms: float
    duration_s: float
    scheduled: int
    completed: int
    dropped: int
    errors: int
    achieved_qps: float
    latency: LatencyPercentiles | None
    queueing: LatencyPercentiles | None
    service: LatencyPercentiles | None
    schedule_error_us: dict[str, float]
    mean_batch: float = 1.0
    largest_batch: int = 1
    first_error: str | None = None
    interrupted: bool = False

    @property
    def label(self) -> str:
        """``"100 qps"`` or ``"c=4"``: the load this level offered."""
        if self.mode == "concurrency":
            return f"c={self.concurrency}"
        return f"{self.offered_qps:g} qps"

    def within(self, p99_budget_ms: float) -> bool:
        """Whether every request completed, without errors, and P99 is within the budget."""
        return (
            self.latency is not None
            and self.dropped == 0
            and self.errors == 0
            and not self.interrupted
            and self.latency.p99_ms <= p99_budget_ms
        )


@dataclass(frozen=True)
class CapacitySearch:
    """The highest rate whose P99 stays within a budget, and how sure the search is.

    Attributes:
        p99_budget_ms: The budget.
        capacity_qps: The highest rate that met the budget in every trial at it (0 if none).
        failed_qps: The lowest rate that missed it (``None`` if every rate tried met it):
            the capacity lies in ``[capacity_qps, failed_qps)``.
        trials: Every trial, in the order run.
        note: How the search ended.
    """

    p99_budget_ms: float
    capacity_qps: float
    failed_qps: float | None
    trials: tuple[LoadLevel, ...]
    note: str = ""

    def describe(self) -> str:
        """One line: the capacity and the interval the search is sure of."""
        if self.capacity_qps <= 0:
            return f"no rate tried met P99 <= {self.p99_budget_ms:g} ms. {self.note}".strip()
        upper = "" if self.failed_qps is None else f", below {self.failed_qps:.1f} qps"
        return (
            f"capacity within P99 <= {self.p99_budget_ms:g} ms: {self.capacity_qps:.1f} qps "
            f"(met in every trial{upper}; {len(self.trials)} trials). {self.note}"
        ).strip()


@dataclass(frozen=True)
class LoadReport(JsonRecord):
    """A load test: what was served, and every level measured.

    Attributes:
        target: The model file or the callable's name.
        levels: The levels, in the order run.
        capacity: The capacity search, if one was run.
        kind: Marks the JSON as a load report.
        schema_version: The JSON layout's version.
    """

    target: str
    levels: tuple[LoadLevel, ...]
    capacity: CapacitySearch | None = None
    kind: str = LOAD_KIND
    schema_version: str = LOAD_SCHEMA_VERSION

    JSON_WHAT = "load report"
    JSON_ROOT = "load"

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(
            data, cls.JSON_WHAT, "re-run the load test", ours=LOAD_SCHEMA_VERSION, kind=LOAD_KIND
        )

    def to_table(self) -> str:
        """The latency-vs-load table: one row per level (capacity trials not included)."""
        return load_table(self.levels)

    def to_text(self) -> str:
        """The table, notes on drops and errors, and the capacity line."""
        parts = [f"Load test of {self.target}", "", self.to_table()]
        notes = [
            f"{lv.label}: first error: {lv.first_error}" for lv in self.levels if lv.first_error
        ]
        notes += [
            f"{lv.label}: interrupted; figures so far" for lv in self.levels if lv.interrupted
        ]
        if notes:
            parts += ["", *notes]
        if self.capacity is not None:
            parts += ["", self.capacity.describe()]
        return "\n".join(parts)

    def plot(self, path: str | Path) -> Path:
        """Writes the latency-vs-load curve as a PNG (see :func:`plot_load`)."""
        return plot_load(self, Path(path))


def _ms(p: LatencyPercentiles | None, name: str) -> str:
    return "-" if p is None else f"{getattr(p, name):.2f}"


def load_table(levels: tuple[LoadLevel, ...] | list[LoadLevel]) -> str:
    """Offered vs achieved load, latency percentiles, queueing vs service and drops.

    With a dynamic batcher in any level, a ``Batch`` column gives the mean and largest batch
    each level formed.
    """
    header: tuple[str, ...] = (
        "Load", "Achieved QPS", "P50 ms", "P95 ms", "P99 ms", "P99.9 ms", "Queue P99 ms",
        "Service P99 ms", "Dropped", "Errors",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = [
        (
            lv.label,
            f"{lv.achieved_qps:.1f}",
            _ms(lv.latency, "p50_ms"),
            _ms(lv.latency, "p95_ms"),
            _ms(lv.latency, "p99_ms"),
            _ms(lv.latency, "p999_ms"),
            _ms(lv.queueing, "p99_ms"),
            _ms(lv.service, "p99_ms"),
            f"{lv.dropped}/{lv.scheduled}",
            str(lv.errors),
        )
        for lv in levels
    ]
    if any(lv.max_batch > 1 for lv in levels):
        header += ("Batch mean/max",)
        batches = [f"{lv.mean_batch:.2f}/{lv.largest_batch}" for lv in levels]
        rows = [(*row, b) for row, b in zip(rows, batches, strict=True)]
    return box_table(header, rows, widths=(10,) + (9,) * (len(header) - 1))


def plot_load(report: LoadReport, path: Path) -> Path:
    """Latency percentiles against achieved QPS (left), achieved against offered (right).

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
        InvalidArgumentError: If no level has a completed request.
    """
    levels = [lv for lv in report.levels if lv.latency is not None]
    levels += [lv for lv in report.capacity.trials if lv.latency] if report.capacity else []
    if not levels:
        raise InvalidArgumentError(f"no load level of {report.target} completed a request")
    levels.sort(key=lambda lv: lv.achieved_qps)
    fig = _figure(1, 2)
    left, right = fig.subplots(1, 2)
    opened = [lv for lv in levels if lv.offered_qps is not None]
    closed = [lv for lv in levels if lv.offered_qps is None]
    for series, style, kind in ((opened, "-", "open loop"), (closed, ":", "closed loop")):
        if not series:
            continue
        x = [lv.achieved_qps for lv in series]
        for name, label in (("p50_ms", "P50"), ("p95_ms", "P95"), ("p99_ms", "P99")):
            y = [getattr(lv.latency, name) for lv in series]
            left.plot(x, y, marker="o", linestyle=style, label=f"{label}, {kind}")
    if report.capacity is not None:
        left.axhline(report.capacity.p99_budget_ms, color="grey", linestyle="--", label="budget")
    left.set(xlabel="achieved QPS", ylabel="latency (ms)", yscale="log", title=report.target)
    left.legend()
    if opened:
        offered = [lv.offered_qps or 0.0 for lv in opened]
        right.plot(offered, [lv.achieved_qps for lv in opened], marker="o", label="achieved")
        right.plot(offered, offered, color="grey", linestyle="--", label="offered")
        right.legend()
    right.set(xlabel="offered QPS", ylabel="achieved QPS", title="open loop")
    return _save(fig, path)


def load_comparison(before: LoadReport, after: LoadReport) -> str:
    """The levels both reports measured (matched by load), each metric before -> after.

    Raises:
        InvalidArgumentError: If the reports share no level.
    """
    theirs = {lv.label: lv for lv in after.levels}
    shared = [(lv, theirs[lv.label]) for lv in before.levels if lv.label in theirs]
    if not shared:
        raise InvalidArgumentError(
            f"the load reports of {before.target} and {after.target} share no load level "
            f"({', '.join(lv.label for lv in before.levels)} against "
            f"{', '.join(lv.label for lv in after.levels)})"
        )

    def change(a: LatencyPercentiles | None, b: LatencyPercentiles | None, name: str) -> str:
        if a is None or b is None:
            return f"{_ms(a, name)} -> {_ms(b, name)}"
        x, y = getattr(a, name), getattr(b, name)
        return f"{x:.2f} -> {y:.2f} ({y / x:.2f}x)" if x > 0 else f"{x:.2f} -> {y:.2f}"

    header = ("Load", "Achieved QPS", "P50 ms", "P99 ms", "P99.9 ms", "Dropped")
    rows = [
        (
            a.label,
            f"{a.achieved_qps:.1f} -> {b.achieved_qps:.1f}",
            change(a.latency, b.latency, "p50_ms"),
            change(a.latency, b.latency, "p99_ms"),
            change(a.latency, b.latency, "p999_ms"),
            f"{a.dropped} -> {b.dropped}",
        )
        for a, b in shared
    ]
    return box_table(header, rows, widths=(10, 16, 16, 16, 16, 9))
