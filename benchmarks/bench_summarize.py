"""Benchmark: pyinfer.summarize against numpy on latency-like samples (not a test).

Times, side by side in one run, each repeated and reduced to the median:

  (a) numpy: mean, std, min, max and np.percentile(x, [50, 95, 99])
  (b) numpy: one sort, then mean, std and the percentiles read off the sorted copy
  (c) pyinfer.summarize(x, [50, 95, 99])

plus np.sum(x) as a floor (one pass over the memory), and checks that (c) matches (a) exactly.

Usage: PYTHONPATH=src python3 benchmarks/bench_summarize.py [--n 10000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import pyinfer

PERCENTILES = [50.0, 95.0, 99.0]


def numpy_summary(x: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
    return x.mean(), x.std(), x.min(), x.max(), np.percentile(x, PERCENTILES)


def numpy_sorted_summary(x: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
    s = np.sort(x)
    n = s.size
    h = np.asarray(PERCENTILES) / 100.0 * (n - 1)
    i = np.floor(h).astype(np.int64)
    j = np.minimum(i + 1, n - 1)
    g = h - i
    lo, hi = s[i], s[j]
    diff = hi - lo
    values = np.where(g >= 0.5, hi - diff * (1 - g), lo + diff * g)
    return s.mean(), s.std(), s[0], s[-1], values


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="number of samples")
    parser.add_argument("--repeat", type=int, default=7, help="runs per method (median taken)")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    # Latency-like: lognormal around 5 ms in ns, with a few slow outliers.
    x = rng.lognormal(np.log(5e6), 0.25, args.n)
    x[rng.integers(0, args.n, max(1, args.n // 1000))] *= 4.0

    pyinfer.summarize(x, PERCENTILES)  # warm up (threads, page faults)
    rows = [
        ("np.sum (memory floor)", median_ms(lambda: np.sum(x), args.repeat)),
        ("numpy mean/std/min/max/percentile", median_ms(lambda: numpy_summary(x), args.repeat)),
        ("numpy sort + interpolate", median_ms(lambda: numpy_sorted_summary(x), args.repeat)),
        ("pyinfer.summarize", median_ms(lambda: pyinfer.summarize(x, PERCENTILES), args.repeat)),
    ]
    ref = numpy_summary(x)
    s = pyinfer.summarize(x, PERCENTILES)
    exact = all(s.percentiles[p] == v for p, v in zip(PERCENTILES, ref[4], strict=True))
    exact = exact and s.min == ref[2] and s.max == ref[3]
    mean_err = abs(s.mean - ref[0]) / abs(ref[0])
    std_err = abs(s.std - ref[1]) / abs(ref[1])

    print(f"n = {args.n:,} float64, median of {args.repeat} runs")
    print(f"{'method':<36} {'ms':>9} {'numpy / this':>13}")
    numpy_ms = rows[1][1]
    for name, ms in rows:
        print(f"{name:<36} {ms:9.2f} {numpy_ms / ms:13.1f}")
    print(f"speed-up of pyinfer over numpy (a): {numpy_ms / rows[3][1]:.1f}x")
    print(
        f"results: percentiles/min/max identical to numpy: {exact}; "
        f"mean rel. diff {mean_err:.1e}; std rel. diff {std_err:.1e}"
    )


if __name__ == "__main__":
    main()
