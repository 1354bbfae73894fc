"""``find_capacity``: the highest request rate whose P99 latency stays within a budget.

The search, after MLPerf LoadGen's peak-performance search: a short closed-loop run (one
request in flight per worker) estimates the service rate; open-loop trials then bracket the
capacity (up by half while trials pass, down by half while they fail), bisect the bracket to
``precision``, and run the highest passing rate ``confirmations`` more times, each with a new
schedule. A rate passes when every request of the trial completed within the timeout, without
errors, and the P99 latency (from the scheduled time) is within the budget. A failed
confirmation makes that rate the upper end, and the search goes on below it. The result is the
interval the search is sure of: the highest rate that passed every trial at it, and the lowest
rate that failed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.load.api import check_settings
from pyinfer.load.processes import serving
from pyinfer.load.runner import LevelSettings, run_concurrency, run_open_loop
from pyinfer.load.targets import Server, request_inputs, target_name
from pyinfer.report.load import CapacitySearch, LoadLevel, LoadReport

if TYPE_CHECKING:
    import numpy as np

    from pyinfer.profiling.settings import IntRange

logger = logging.getLogger(__name__)

__all__ = ["find_capacity"]

# The first open-loop trial runs at this fraction of the closed-loop service rate: a queue
# needs headroom to stay short, so the capacity under a tail budget is usually below it.
_FIRST_FRACTION = 0.8
# Step of the bracketing phase: up by half while trials pass, down by half while they fail.
_STEP = 1.5
# Seconds of the closed-loop estimate (at most the trial duration).
_ESTIMATE_S = 1.0


class _Search:
    """The trials run so far and what they say."""

    def __init__(
        self, servers: Sequence[Server], settings: LevelSettings, budget_ms: float, max_trials: int
    ) -> None:
        self.servers = servers
        self.settings = settings
        self.budget_ms = budget_ms
        self.max_trials = max_trials
        self.trials: list[LoadLevel] = []
        self.failed: float | None = None
        self.passed: list[float] = []

    @property
    def exhausted(self) -> bool:
        return len(self.trials) >= self.max_trials

    def lower(self) -> float:
        """The highest passing rate below the lowest failing one (0 if none)."""
        below = [q for q in self.passed if self.failed is None or q < self.failed]
        return max(below, default=0.0)

    def trial(self, qps: float) -> bool:
        settings = replace(self.settings, seed=self.settings.seed + len(self.trials))
        level = run_open_loop(self.servers, qps, settings)
        self.trials.append(level)
        ok = level.within(self.budget_ms)
        assert level.latency is not None or not ok
        logger.info(
            "capacity trial %.1f qps: %s (P99 %s ms, dropped %d)", qps, "met" if ok else "missed",
            "-" if level.latency is None else f"{level.latency.p99_ms:.2f}", level.dropped,
        )  # fmt: skip
        if ok:
            self.passed.append(qps)
        else:
            self.failed = qps if self.failed is None else min(self.failed, qps)
            self.passed = [q for q in self.passed if q < qps]  # a rate failed once is not sure
        return ok


def _confirmed(search: _Search, qps: float, confirmations: int) -> bool:
    """Runs ``confirmations`` more trials at ``qps``: whether all passed (stops at a miss)."""
    return all(not search.exhausted and search.trial(qps) for _ in range(confirmations))


def _search(search: _Search, start_qps: float, precision: float, confirmations: int) -> str:
    """Runs the search; returns how it ended."""
    qps = start_qps
    while not search.exhausted:
        search.trial(qps)
        lower, upper = search.lower(), search.failed
        if upper is None:
            qps = qps * _STEP
        elif lower == 0.0:
            qps = upper / 2
            if qps < 1e-3:
                return "even 0.001 qps missed the budget"
        elif upper / lower - 1.0 > precision:
            qps = (lower + upper) / 2
        elif _confirmed(search, lower, confirmations):
            return f"bracket narrowed to {precision:.0%}, edge confirmed {confirmations}x"
        else:
            qps = search.lower() or (search.failed or qps) / 2
    return f"stopped after max_trials={search.max_trials}; the interval may be wider than asked"


def find_capacity(
    target: Any,
    *,
    p99_budget_ms: float,
    duration_s: float = 5.0,
    arrival: str = "poisson",
    workers: int | None = None,
    instances: str = "threads",
    timeout_s: float | None = None,
    seed: int = 0,
    max_batch: int = 1,
    max_queue_delay_ms: float = 0.0,
    start_qps: float | None = None,
    precision: float = 0.05,
    confirmations: int = 2,
    max_trials: int = 20,
    input_dims: Mapping[str, int] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    input_values: Mapping[str, float | IntRange] | None = None,
) -> LoadReport:
    """The highest open-loop rate whose P99 latency stays within ``p99_budget_ms``.

    Args:
        target: As for :func:`~pyinfer.load.load_test`.
        p99_budget_ms: The latency budget for the 99th percentile, in milliseconds.
        duration_s: Seconds of schedule per trial.
        arrival: ``"poisson"`` or ``"constant"``.
        workers: Workers (one target instance each).
        instances: ``"threads"`` or ``"processes"``, as for :func:`~pyinfer.load.load_test`.
        timeout_s: Requests not completed this long after their scheduled time are dropped
            (and fail the trial); default 5x the budget, at least 0.5 s, so an overloaded trial
            ends soon after its schedule.
        seed: Seed of the first trial's schedule (each trial adds one).
        max_batch: Dynamic batcher: largest batch.
        max_queue_delay_ms: Dynamic batcher: how long to wait for a batch to fill.
        start_qps: The first rate tried (default: 0.8x a closed-loop estimate).
        precision: Stop bisecting when the bracket's upper end is within this fraction above
            its lower end.
        confirmations: Extra trials at the edge before it counts as sure.
        max_trials: Open-loop trials at most.
        input_dims: Sizes of a model's named dynamic dimensions other than the batch.
        inputs: A model's given inputs by name (one item, or a batch sliced or replicated to
            each request), instead of random ones.
        input_values: A model's given input values by name: a constant, or an ``IntRange``.

    Returns:
        A report whose ``capacity`` holds the result and every trial; its ``levels`` hold the
        closed-loop estimate (when one was run).

    Raises:
        InvalidArgumentError: On a bad setting or target, naming it.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result``: the trials so far.
    """
    if not 0 < p99_budget_ms < float("inf"):
        raise InvalidArgumentError(f"p99_budget_ms must be above 0, got {p99_budget_ms!r}")
    if not 0 < precision < 1:
        raise InvalidArgumentError(f"precision must be between 0 and 1, got {precision!r}")
    if isinstance(confirmations, bool) or not isinstance(confirmations, int) or confirmations < 0:
        raise InvalidArgumentError(f"confirmations must be 0 or more, got {confirmations!r}")
    if timeout_s is None:
        timeout_s = max(5 * p99_budget_ms / 1000, 0.5)
    settings = check_settings(
        duration_s=duration_s, arrival=arrival, timeout_s=timeout_s, seed=seed,
        max_batch=max_batch, max_queue_delay_ms=max_queue_delay_ms,
    )  # fmt: skip
    given = request_inputs(
        seed=seed, input_dims=input_dims, inputs=inputs, input_values=input_values
    )
    stack = contextlib.ExitStack()  # process instances are stopped when the search ends
    servers = stack.enter_context(
        serving(target, workers, instances=instances, max_batch=max_batch, inputs=given)
    )
    search = _Search(servers, settings, p99_budget_ms, max_trials)
    estimate: tuple[LoadLevel, ...] = ()
    name = target_name(target)
    try:
        if start_qps is None:
            quick = replace(settings, duration_s=min(_ESTIMATE_S, duration_s))
            level = run_concurrency(servers, len(servers), quick)
            estimate = (level,)
            start_qps = max(level.achieved_qps * _FIRST_FRACTION, 1e-3)
        elif not 0 < start_qps < float("inf"):
            raise InvalidArgumentError(f"start_qps must be above 0, got {start_qps!r}")
        note = _search(search, start_qps, precision, confirmations)
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_result", None)
        trials = tuple(search.trials) + ((partial,) if isinstance(partial, LoadLevel) else ())
        result = CapacitySearch(
            p99_budget_ms, search.lower(), search.failed, trials, "interrupted; trials so far"
        )
        exc.partial_result = LoadReport(name, estimate, result)  # type: ignore[attr-defined]
        raise
    finally:
        stack.close()
    result = CapacitySearch(
        p99_budget_ms, search.lower(), search.failed, tuple(search.trials), note
    )
    return LoadReport(name, estimate, result)
