"""``load_test``: serve a target under open-loop arrivals and/or N requests in flight."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.load.processes import serving
from pyinfer.load.runner import LevelSettings, run_concurrency, run_open_loop
from pyinfer.load.targets import Server, request_inputs, target_name
from pyinfer.report.load import LoadLevel, LoadReport

if TYPE_CHECKING:
    import numpy as np

    from pyinfer.profiling.settings import IntRange

__all__ = ["ARRIVALS", "check_settings", "load_test", "positive_list"]

#: The arrival processes of an open-loop schedule.
ARRIVALS = ("poisson", "constant")


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number above 0, got {value!r}")
    if value <= 0:
        raise InvalidArgumentError(f"{name} must be above 0, got {value!r}")
    return float(value)


def positive_list(value: Any, name: str, *, integer: bool = False) -> list[float]:
    """``value`` (one number or a sequence) as a list of numbers above 0.

    Raises:
        InvalidArgumentError: On an empty sequence, a value that is not a finite number above
            0, or (``integer``) not an integer.
    """
    values = list(value) if isinstance(value, Sequence) else [value]
    if not values:
        raise InvalidArgumentError(f"{name} needs at least one value")
    out = [_positive(v, name) for v in values]
    if integer and any(isinstance(v, float) or v != int(v) for v in values):
        raise InvalidArgumentError(f"{name} must be whole numbers, got {value!r}")
    return out


def check_settings(
    *,
    duration_s: float,
    arrival: str,
    timeout_s: float | None,
    seed: int,
    max_batch: int,
    max_queue_delay_ms: float,
) -> LevelSettings:
    """Validated settings of every level.

    Raises:
        InvalidArgumentError: Naming the setting that is out of range.
    """
    if arrival not in ARRIVALS:
        raise InvalidArgumentError(f"arrival must be one of {ARRIVALS}, got {arrival!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be an integer of 0 or more, got {seed!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise InvalidArgumentError(f"max_batch must be an integer of at least 1, got {max_batch!r}")
    if max_queue_delay_ms != 0:
        _positive(max_queue_delay_ms, "max_queue_delay_ms")
    return LevelSettings(
        duration_s=_positive(duration_s, "duration_s"),
        arrival=arrival,
        timeout_s=None if timeout_s is None else _positive(timeout_s, "timeout_s"),
        seed=seed,
        max_batch=max_batch,
        max_queue_delay_ms=float(max_queue_delay_ms),
    )


def run_levels(
    servers: Sequence[Server],
    settings: LevelSettings,
    rates: Sequence[float],
    concurrencies: Sequence[int],
    done: list[LoadLevel],
) -> None:
    """Runs every level in turn, appending each to ``done`` (so Ctrl-C keeps the finished).

    Raises:
        KeyboardInterrupt: With ``partial_result`` set by the level that was running.
    """
    for qps in rates:
        done.append(run_open_loop(servers, qps, settings))
    for n in concurrencies:
        done.append(run_concurrency(servers, n, settings))


def load_test(
    target: Any,
    *,
    qps: float | Sequence[float] | None = None,
    concurrency: int | Sequence[int] | None = None,
    duration_s: float = 10.0,
    arrival: str = "poisson",
    workers: int | None = None,
    instances: str = "threads",
    timeout_s: float | None = None,
    seed: int = 0,
    max_batch: int = 1,
    max_queue_delay_ms: float = 0.0,
    input_dims: Mapping[str, int] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    input_values: Mapping[str, float | IntRange] | None = None,
) -> LoadReport:
    """Serves ``target`` under load and measures the latency its users would see.

    Open loop (``qps``): requests arrive on a schedule that does not wait for replies (Poisson
    or constant), issued on time by a native scheduler thread; each request's latency counts
    from its scheduled time, so a stall is charged to every request it delays. Closed loop
    (``concurrency``): N requests kept in flight. Give either or both (one level per value).

    Args:
        target: A callable (called with no arguments per request), a pyinfer ``Model``, an
            ``InferenceEngine``, or a sequence of these: one instance per worker.
        qps: Offered rate(s) in requests per second.
        concurrency: Requests kept in flight, one level per value.
        duration_s: Seconds of schedule (open loop) or of issuing (closed loop) per level.
        arrival: ``"poisson"`` (exponential gaps, as real users) or ``"constant"``.
        workers: Workers serving requests (default 1, or one per instance given).
        instances: ``"threads"``: each worker is a thread of this process, with its target
            instance (one shared, or one per worker given). ``"processes"``: each worker is a
            process of its own that loads its own copy of the model from its file (or imports
            the callable by reference), for targets that hold Python's GIL; requests and
            replies cross a pipe, latency is still counted here from the scheduled time.
        timeout_s: Requests not completed this long after their scheduled time are dropped.
        seed: Seed of the Poisson schedule and of a model's example inputs.
        max_batch: Dynamic batcher: serve up to this many queued requests in one model call.
        max_queue_delay_ms: Dynamic batcher: how long to wait for a batch to fill.
        input_dims: Sizes of a model's named dynamic dimensions other than the batch.
        inputs: A model's given inputs by name (one item, or a batch sliced or replicated to
            each request), instead of random ones.
        input_values: A model's given input values by name: a constant, or an ``IntRange``.

    Returns:
        The report: one :class:`~pyinfer.report.load.LoadLevel` per rate, then per concurrency.

    Raises:
        InvalidArgumentError: On a bad setting or target, naming it; with processes, a target
            another process cannot load (a lambda, a model made in memory).
        InferenceError: If a process instance fails to start or load its target.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result``: the report of what was measured.
    """
    if qps is None and concurrency is None:
        raise InvalidArgumentError("give a request rate (qps=...) or a concurrency, or both")
    rates = [] if qps is None else positive_list(qps, "qps")
    levels = [] if concurrency is None else positive_list(concurrency, "concurrency", integer=True)
    settings = check_settings(
        duration_s=duration_s, arrival=arrival, timeout_s=timeout_s, seed=seed,
        max_batch=max_batch, max_queue_delay_ms=max_queue_delay_ms,
    )  # fmt: skip
    given = request_inputs(
        seed=seed, input_dims=input_dims, inputs=inputs, input_values=input_values
    )
    name = target_name(target)
    done: list[LoadLevel] = []
    try:
        with serving(
            target, workers, instances=instances, max_batch=max_batch, inputs=given
        ) as servers:
            run_levels(servers, settings, rates, [int(n) for n in levels], done)
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_result", None)
        exc.partial_result = LoadReport(  # type: ignore[attr-defined]
            name, tuple(done) + ((partial,) if isinstance(partial, LoadLevel) else ())
        )
        raise
    return LoadReport(name, tuple(done))
