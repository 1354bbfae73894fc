"""Histogram-mode recording: bulk speed, per-call speed and memory, against an exact recorder.

Run: python benchmarks/bench_histogram.py [--n N] [--rounds R] [--digits D]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import pyinfer


def timed(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--digits", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(5e6), 0.5, size=args.n)
    small = values[:200_000]

    def hist_bulk() -> None:
        r = pyinfer.LatencyRecorder(histogram=True, significant_digits=args.digits)
        r.record_many(values)

    def exact_bulk() -> None:
        r = pyinfer.LatencyRecorder()
        r.record_many(values)

    def hist_calls() -> None:
        r = pyinfer.LatencyRecorder(histogram=True, significant_digits=args.digits)
        for v in small.tolist():
            r.record(v)

    def exact_calls() -> None:
        r = pyinfer.LatencyRecorder()
        for v in small.tolist():
            r.record(v)

    rows = [
        ("histogram record_many", args.n, timed(hist_bulk, args.rounds)),
        ("exact record_many", args.n, timed(exact_bulk, args.rounds)),
        ("histogram record() from Python", small.size, timed(hist_calls, args.rounds)),
        ("exact record() from Python", small.size, timed(exact_calls, args.rounds)),
    ]
    print(f"{'operation':<34}{'samples':>12}{'ns/sample':>11}{'Msamples/s':>12}")
    for name, count, ns in rows:
        print(f"{name:<34}{count:>12}{ns / count:>11.2f}{count / ns * 1e3:>12.1f}")

    hist = pyinfer.LatencyRecorder(histogram=True, significant_digits=args.digits)
    hist.record_many(values)
    exact = pyinfer.LatencyRecorder()
    exact.record_many(values)
    print(
        f"memory for {args.n} samples: histogram {hist.memory_bytes / 1024:.0f} KiB "
        f"({args.digits} digits, up to 1 h), exact {exact.memory_bytes / 2**20:.0f} MiB"
    )
    ranks = [50.0, 90.0, 99.0, 99.9]
    estimate = hist.summary(ranks).percentiles
    truth = dict(zip(ranks, np.percentile(values, ranks), strict=True))
    worst = max(abs(estimate[p] - truth[p]) / truth[p] for p in ranks)
    print(f"worst relative percentile error: {worst:.2e} (bound {hist.relative_error:.2e})")


if __name__ == "__main__":
    main()
