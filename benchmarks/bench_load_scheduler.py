"""How close to schedule an open-loop load test issues its requests: native vs Python scheduler.

Run: PYTHONPATH=src python benchmarks/bench_load_scheduler.py [--duration S] [--workers N]
       [--rounds R] [--json FILE]

An open-loop load test must issue request i at its scheduled time whatever the workers are
doing. Two schedulers issue the same constant-rate schedule to the same worker threads:

* native: ``pyinfer.core.ArrivalScheduler`` (the one ``pyinfer.load_test`` uses), a C++ thread
  that sleeps, then spins, to each time on CLOCK_MONOTONIC and queues the request without the
  GIL; workers wait in ``next()`` with the GIL released.
* python: a Python thread doing the same (``time.sleep`` to 200 us before, then spinning on
  the same clock) and handing requests over a ``queue.Queue``.

Two targets: a no-op, and ``busy``: 0.3 ms of pure-Python work per request, so the workers
hold the GIL and a Python scheduler must win it back to keep time (the interpreter's switch
interval is 5 ms). For each rate (100 and 1,000 requests per second) the table gives the
scheduling error (issue minus scheduled time) at P50, P99 and max, in microseconds, and the
P99 of the lag until a worker started the request, each the median over the rounds. The
target: native P99 under 100 us at 1,000 qps on the no-op target. The configurations run
interleaved, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyinfer.core import ArrivalScheduler, constant_arrivals, now_ns

SPIN_NS = 200_000
START_DELAY_NS = 20_000_000
Arrival = tuple[int, int, int]


def noop() -> None:
    """The no-op target."""


def busy() -> None:
    """About 0.3 ms of pure-Python work (holds the GIL)."""
    total = 0
    for i in range(6000):
        total += i * i
    if total < 0:
        raise AssertionError


def python_scheduler(offsets: list[int], start_ns: int, out: queue.Queue[Arrival | None]) -> None:
    """The Python-thread scheduler: sleep to 200 us before each time, spin, hand over."""
    for i, offset in enumerate(offsets):
        due = start_ns + offset
        left = due - now_ns()
        if left > SPIN_NS:
            time.sleep((left - SPIN_NS) * 1e-9)
        while now_ns() < due:
            pass
        out.put((i, due, now_ns()))


def run(
    kind: str, target: Callable[[], None], qps: float, duration_s: float, workers: int
) -> dict[str, float]:
    """Issues ``qps * duration_s`` requests; error and lag percentiles in microseconds."""
    offsets = constant_arrivals(qps, round(qps * duration_s))
    issue_err: list[int] = []
    start_lag: list[int] = []
    lock = threading.Lock()

    def record(a: Arrival) -> None:
        started = now_ns()
        target()
        with lock:
            issue_err.append(a[2] - a[1])
            start_lag.append(started - a[1])

    start_ns = now_ns() + START_DELAY_NS
    if kind == "native":
        scheduler = ArrivalScheduler(offsets, SPIN_NS)

        def native_worker() -> None:
            while (a := scheduler.next()) is not None:
                record(a)

        threads = [threading.Thread(target=native_worker) for _ in range(workers)]
        for t in threads:
            t.start()
        scheduler.start(start_ns)
    else:
        handoff: queue.Queue[Arrival | None] = queue.Queue()

        def python_worker() -> None:
            while (a := handoff.get()) is not None:
                record(a)

        threads = [threading.Thread(target=python_worker) for _ in range(workers)]
        for t in threads:
            t.start()
        python_scheduler(offsets, start_ns, handoff)
        for _ in threads:
            handoff.put(None)
    for t in threads:
        t.join()
    err = np.array(issue_err) * 1e-3
    lag = np.array(start_lag) * 1e-3
    return {
        "p50_us": float(np.percentile(err, 50)),
        "p99_us": float(np.percentile(err, 99)),
        "max_us": float(err.max()),
        "start_lag_p99_us": float(np.percentile(lag, 99)),
    }


def main() -> None:
    """Runs every configuration and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per configuration")
    parser.add_argument("--workers", type=int, default=2, help="worker threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table gives medians")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    configs = [
        (target, qps, kind) for target in (noop, busy) for qps in (100.0, 1000.0)
        for kind in ("native", "python")
    ]  # fmt: skip
    runs: dict[tuple[str, float, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):  # interleaved: a drift of the machine hits every config
        for target, qps, kind in configs:
            figures = run(kind, target, qps, args.duration, args.workers)
            runs.setdefault((target.__name__, qps, kind), []).append(figures)
    results = [
        {"target": name, "qps": qps, "scheduler": kind}
        | {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        for (name, qps, kind), rounds in runs.items()
    ]
    print(
        f"{'target':<7}| {'qps':>5} | {'scheduler':<9}| {'P50 us':>8} | {'P99 us':>8} | "
        f"{'max us':>8} | {'start lag P99 us':>16}"
    )
    for r in results:
        print(
            f"{r['target']:<7}| {r['qps']:>5.0f} | {r['scheduler']:<9}| {r['p50_us']:>8.1f} | "
            f"{r['p99_us']:>8.1f} | {r['max_us']:>8.1f} | {r['start_lag_p99_us']:>16.1f}"
        )
    print(
        f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on "
        f"{os.cpu_count()} CPUs: a scheduling error of milliseconds means the machine was busy"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
