"""Running one load level: open loop on a native scheduler, or N requests kept in flight.

Open loop: :class:`~pyinfer.core.ArrivalScheduler` issues each request at its scheduled time
from a native thread (no GIL, so it keeps time while workers run Python) and the workers take
them in ``next()`` with the GIL released. A request's latency runs from its *scheduled* time to
its completion: a stall is charged to every request queued behind it (coordinated omission
corrected, as MLPerf LoadGen and wrk2 do). With a dynamic batcher, a worker that takes a request
waits up to ``max_queue_delay`` for more, up to ``max_batch``, and serves them in one call.

Closed loop (concurrency N): N slots each issue a request as soon as their last one completes.
Without a batcher each slot calls its instance directly; with one (``max_batch`` > 1) the slots
queue their requests and the instances take up to ``max_batch`` of them per call, waiting at
most ``max_queue_delay`` after the first (Triton's dynamic batcher under perf_analyzer's
concurrency mode).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyinfer.core import (
    ArrivalScheduler,
    LatencyRecorder,
    constant_arrivals,
    now_ns,
    poisson_arrivals,
)
from pyinfer.load.targets import Server
from pyinfer.report.load import LatencyPercentiles, LoadLevel

logger = logging.getLogger(__name__)

__all__ = ["LevelSettings", "run_concurrency", "run_open_loop"]

# The schedule starts this long after the workers are started, so they are waiting when the
# first request is due.
_START_DELAY_NS = 5_000_000
# How often the main thread wakes from joining the workers (so Ctrl-C is seen).
_JOIN_POLL_S = 0.1


@dataclass(frozen=True)
class LevelSettings:
    """How one level runs (validated by :func:`pyinfer.load.load_test`).

    Attributes:
        duration_s: Seconds of schedule (open loop) or of issuing (closed loop).
        arrival: ``"poisson"`` or ``"constant"``.
        timeout_s: A request not completed this long after its scheduled time is dropped
            (``None``: never).
        seed: Seed of the Poisson schedule.
        max_batch: The dynamic batcher's largest batch (1: none).
        max_queue_delay_ms: How long a worker waits to fill a batch.
    """

    duration_s: float
    arrival: str = "poisson"
    timeout_s: float | None = None
    seed: int = 0
    max_batch: int = 1
    max_queue_delay_ms: float = 0.0

    @property
    def timeout_ns(self) -> int:
        """The timeout in nanoseconds (0: none)."""
        return 0 if self.timeout_s is None else round(self.timeout_s * 1e9)


class _Tally:
    """What the workers of one level measured (thread-safe)."""

    def __init__(self) -> None:
        self.latency = LatencyRecorder(histogram=True)
        self.queueing = LatencyRecorder(histogram=True)
        self.service = LatencyRecorder(histogram=True)
        self.schedule_error = LatencyRecorder(histogram=True)
        self._lock = threading.Lock()
        self.completed = self.dropped = self.errors = 0
        self.calls = self.served = 0  # calls made, and the requests they served
        self.largest = 0  # the largest batch one call served
        self.last_end_ns = 0
        self.first_error: str | None = None
        self.abandon = threading.Event()

    def drop(self, count: int) -> None:
        with self._lock:
            self.dropped += count

    def fail(self, count: int, exc: BaseException) -> None:
        with self._lock:
            self.errors += count
            self.calls += 1
            self.served += count
            self.largest = max(self.largest, count)
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}"
                logger.warning("load test: a request failed: %s", self.first_error)

    def done(self, scheduled: Sequence[int], start_ns: int, end_ns: int, timeout_ns: int) -> None:
        """Requests scheduled at ``scheduled`` served by one call from start to end."""
        late = sum(1 for s in scheduled if timeout_ns and end_ns - s > timeout_ns)
        for s in scheduled:
            if timeout_ns and end_ns - s > timeout_ns:
                continue
            self.latency.record(end_ns - s)
            self.queueing.record(max(0, start_ns - s))
        self.service.record(end_ns - start_ns)
        with self._lock:
            self.completed += len(scheduled) - late
            self.dropped += late
            self.calls += 1
            self.served += len(scheduled)
            self.largest = max(self.largest, len(scheduled))
            self.last_end_ns = max(self.last_end_ns, end_ns)

    def level(
        self, *, start_ns: int, scheduled: int, workers: int, settings: LevelSettings, **kw: object
    ) -> LoadLevel:
        # The schedule's duration, or until the last completion when later (or interrupted).
        span_s = max(self.last_end_ns - start_ns, 1) * 1e-9 if self.completed else 0.0
        if self.completed and not self.abandon.is_set():
            span_s = max(span_s, settings.duration_s)
        error: dict[str, float] = {}
        if self.schedule_error.count:
            s = self.schedule_error.summary((50.0, 99.0))
            error = {"p50": s.percentile(50.0) * 1e-3, "p99": s.percentile(99.0) * 1e-3}
            error["max"] = s.max * 1e-3
        unaccounted = scheduled - self.completed - self.dropped - self.errors
        return LoadLevel(
            workers=workers,
            max_batch=settings.max_batch,
            max_queue_delay_ms=settings.max_queue_delay_ms,
            duration_s=span_s,
            scheduled=scheduled,
            completed=self.completed,
            dropped=self.dropped + max(0, unaccounted),
            errors=self.errors,
            achieved_qps=self.completed / span_s if span_s else 0.0,
            latency=LatencyPercentiles.from_recorder(self.latency),
            queueing=LatencyPercentiles.from_recorder(self.queueing),
            service=LatencyPercentiles.from_recorder(self.service),
            schedule_error_us=error,
            mean_batch=self.served / self.calls if self.calls else 1.0,
            largest_batch=max(self.largest, 1),
            first_error=self.first_error,
            interrupted=self.abandon.is_set(),
            **kw,  # type: ignore[arg-type]
        )


def _serve(server: Server, tally: _Tally, scheduled: list[int] | None, timeout_ns: int) -> None:
    """Serves requests scheduled at ``scheduled`` in one call (``None``: one, issued now)."""
    if tally.abandon.is_set():  # stopped: what is left is never served
        tally.drop(1 if scheduled is None else len(scheduled))
        return
    live = scheduled
    if live is not None and timeout_ns:
        now = now_ns()
        live = [s for s in live if now - s <= timeout_ns]
        tally.drop(len(scheduled or ()) - len(live))
        if not live:
            return
    call = server.prepare(1 if live is None else len(live))
    start = now_ns()
    live = [start] if live is None else live
    try:
        call()
    except Exception as exc:  # a failed request is counted; the test goes on
        tally.fail(len(live), exc)
        return
    tally.done(live, start, now_ns(), timeout_ns)


def _open_worker(
    server: Server, scheduler: ArrivalScheduler, tally: _Tally, settings: LevelSettings
) -> None:
    delay_ns = round(settings.max_queue_delay_ms * 1e6)
    while (first := scheduler.next()) is not None:
        batch = [first]
        while len(batch) < settings.max_batch:
            more = scheduler.next(first[2] + delay_ns)
            if more is None:
                break
            batch.append(more)
        for _, scheduled_ns, issued_ns in batch:
            tally.schedule_error.record(issued_ns - scheduled_ns)
        _serve(server, tally, [a[1] for a in batch], settings.timeout_ns)


def _warm_up(servers: Sequence[Server], max_batch: int) -> None:
    """Makes a model's inputs for every batch size and runs each once (callables: nothing)."""
    for server in {id(s): s for s in servers}.values():
        if server.model is not None:
            for k in range(1, max_batch + 1):
                server.serve(k)


def _run_threads(workers: list[threading.Thread], stop: Callable[[], None], tally: _Tally) -> None:
    """Starts and joins the workers; on Ctrl-C, stops them, keeps what they measured."""
    for t in workers:
        t.start()
    try:
        for t in workers:
            while t.is_alive():
                t.join(_JOIN_POLL_S)
    except KeyboardInterrupt:
        tally.abandon.set()
        stop()
        for t in workers:
            t.join()
        raise


def run_open_loop(servers: Sequence[Server], qps: float, settings: LevelSettings) -> LoadLevel:
    """One open-loop level at ``qps`` requests per second.

    Raises:
        KeyboardInterrupt: With ``partial_result``, the level measured so far.
    """
    _warm_up(servers, settings.max_batch)
    count = max(1, round(qps * settings.duration_s))
    if settings.arrival == "poisson":
        offsets = poisson_arrivals(qps, count, settings.seed)
    else:
        offsets = constant_arrivals(qps, count)
    scheduler = ArrivalScheduler(offsets)
    tally = _Tally()
    threads = [
        threading.Thread(
            target=_open_worker, args=(s, scheduler, tally, settings), name=f"pyinfer-load-{i}"
        )
        for i, s in enumerate(servers)
    ]
    start_ns = now_ns() + _START_DELAY_NS
    scheduler.start(start_ns)
    fields = {"mode": "open", "offered_qps": float(qps), "concurrency": None}
    try:
        _run_threads(threads, scheduler.stop, tally)
    except KeyboardInterrupt as exc:
        exc.partial_result = tally.level(  # type: ignore[attr-defined]
            start_ns=start_ns, scheduled=scheduler.issued, workers=len(servers),
            settings=settings, arrival=settings.arrival, **fields,
        )  # fmt: skip
        raise
    return tally.level(
        start_ns=start_ns, scheduled=count, workers=len(servers), settings=settings,
        arrival=settings.arrival, **fields,
    )  # fmt: skip


def _slot(server: Server, tally: _Tally, end_ns: int, timeout_ns: int) -> None:
    while not tally.abandon.is_set() and now_ns() < end_ns:
        _serve(server, tally, None, timeout_ns)


class _Request:
    """One closed-loop request queued for the batcher: its issue time, and its completion."""

    __slots__ = ("done", "issued_ns")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.issued_ns = now_ns()


class _BatchQueue:
    """The closed-loop batcher: slots queue requests, instances take batches of them."""

    def __init__(self, slots: int, settings: LevelSettings) -> None:
        self.requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.settings = settings
        self._live = slots
        self._lock = threading.Lock()
        self.finished = threading.Event()  # every slot has stopped: nothing more will come

    def slot(self, tally: _Tally, end_ns: int) -> None:
        """Issues a request, waits for its reply, again, until the end (or Ctrl-C)."""
        try:
            while not tally.abandon.is_set() and now_ns() < end_ns:
                request = _Request()
                self.requests.put(request)
                request.done.wait()
        finally:
            with self._lock:
                self._live -= 1
                if self._live == 0:
                    self.finished.set()

    def _take(self, timeout_s: float) -> _Request | None:
        try:
            return self.requests.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def worker(self, server: Server, tally: _Tally) -> None:
        """Serves batches: the first queued request, and what comes within the delay."""
        delay_ns = round(self.settings.max_queue_delay_ms * 1e6)
        while True:
            first = self._take(_JOIN_POLL_S)
            if first is None:
                if self.finished.is_set():  # a slot stops only once its request is served
                    return
                continue
            batch = [first]
            while len(batch) < self.settings.max_batch:
                more = self._take((first.issued_ns + delay_ns - now_ns()) * 1e-9)
                if more is None:
                    break
                batch.append(more)
            try:
                _serve(server, tally, [r.issued_ns for r in batch], self.settings.timeout_ns)
            finally:
                for r in batch:
                    r.done.set()


def run_concurrency(
    servers: Sequence[Server], concurrency: int, settings: LevelSettings
) -> LoadLevel:
    """One closed-loop level: ``concurrency`` requests kept in flight for the duration.

    Without a batcher (``max_batch`` 1), slot i is served by instance ``i % len(servers)``:
    with fewer instances than slots, requests share instances (their calls then run at once on
    one instance). With one, every instance takes up to ``max_batch`` queued requests per call,
    waiting at most ``max_queue_delay_ms`` after the first was issued.

    Raises:
        KeyboardInterrupt: With ``partial_result``, the level measured so far.
    """
    _warm_up(servers, settings.max_batch)
    tally = _Tally()
    start_ns = now_ns()
    end_ns = start_ns + round(settings.duration_s * 1e9)
    if settings.max_batch > 1:
        batcher = _BatchQueue(concurrency, settings)
        threads = [
            threading.Thread(target=batcher.slot, args=(tally, end_ns), name=f"pyinfer-slot-{i}")
            for i in range(concurrency)
        ]
        threads += [
            threading.Thread(target=batcher.worker, args=(s, tally), name=f"pyinfer-load-{i}")
            for i, s in enumerate(servers)
        ]
    else:
        threads = [
            threading.Thread(
                target=_slot,
                args=(servers[i % len(servers)], tally, end_ns, settings.timeout_ns),
                name=f"pyinfer-slot-{i}",
            )
            for i in range(concurrency)
        ]
    fields = {"mode": "concurrency", "offered_qps": None, "concurrency": concurrency}

    def level() -> LoadLevel:
        issued = tally.completed + tally.dropped + tally.errors
        return tally.level(
            start_ns=start_ns, scheduled=issued, workers=len(servers), settings=settings,
            arrival=None, **fields,
        )  # fmt: skip

    try:
        _run_threads(threads, lambda: None, tally)
    except KeyboardInterrupt as exc:
        exc.partial_result = level()  # type: ignore[attr-defined]
        raise
    return level()
