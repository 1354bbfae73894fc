"""Benchmark: pyinfer.summarize against numpy on latency-like samples (not a test).

For every size (100 to 10,000,000 samples by default) times, side by side and alternating round
by round, each round a batch of calls lasting about 20 ms, reduced to the median per call:

  (a) numpy: mean, std, min, max and np.percentile(x, [50, 95, 99])
  (b) numpy: one sort, then mean, std and the percentiles read off the sorted copy
  (c) pyinfer.summarize(x, [50, 95, 99])

plus np.sum(x) as a floor (one pass over the memory). Checks at every size that (c) gives
numpy's percentiles, min and max exactly, and its mean and std to 1e-12 relative.

Usage: PYTHONPATH=src python3 benchmarks/bench_summarize.py [--sizes 100,1000,...] [--rounds 7]
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


def per_call_s(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def calls_for(fn: Callable[[], object], batch_s: float) -> int:
    """Calls of `fn` that last about `batch_s` (from the fastest of three single calls)."""
    single = min(per_call_s(fn, 1) for _ in range(3))
    return max(1, int(batch_s / max(single, 1e-9)))


def samples(n: int, seed: int) -> np.ndarray:
    """Latency-like: lognormal around 5 ms in ns, with a few slow outliers."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(np.log(5e6), 0.25, n)
    x[rng.integers(0, n, max(1, n // 1000))] *= 4.0
    return x


def check(x: np.ndarray) -> tuple[bool, float]:
    """Whether pyinfer's percentiles, min and max equal numpy's; the larger of the mean's and the
    std's relative differences."""
    ref = numpy_summary(x)
    s = pyinfer.summarize(x, PERCENTILES)
    exact = all(s.percentiles[p] == v for p, v in zip(PERCENTILES, ref[4], strict=True))
    exact = exact and s.min == ref[2] and s.max == ref[3]
    err = max(abs(s.mean - ref[0]) / abs(ref[0]), abs(s.std - ref[1]) / abs(ref[1]))
    return exact, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="100,1000,10000,32768,100000,1000000,10000000",
        help="comma-separated sample counts",
    )
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median taken)")
    parser.add_argument("--batch-ms", type=float, default=20.0, help="length of one timed batch")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    print(f"median of {args.rounds} alternating rounds, microseconds per call")
    print()
    print("| samples | np.sum | numpy (a) | numpy sort (b) | pyinfer (c) | (a) / (c) | exact |")
    print("|---|---|---|---|---|---|---|")
    slower = []
    for n in (int(v) for v in args.sizes.split(",")):
        x = samples(n, args.seed)
        pyinfer.summarize(x, PERCENTILES)  # warm up (threads, page faults)
        methods: dict[str, Callable[[], object]] = {
            "sum": lambda x=x: np.sum(x),
            "numpy": lambda x=x: numpy_summary(x),
            "sorted": lambda x=x: numpy_sorted_summary(x),
            "pyinfer": lambda x=x: pyinfer.summarize(x, PERCENTILES),
        }
        calls = {k: calls_for(fn, args.batch_ms / 1e3) for k, fn in methods.items()}
        times: dict[str, list[float]] = {k: [] for k in methods}
        for _ in range(args.rounds):
            for k, fn in methods.items():
                times[k].append(per_call_s(fn, calls[k]))
        us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        exact, err = check(x)
        ratio = us["numpy"] / us["pyinfer"]
        if ratio < 1.0:
            slower.append(n)
        print(
            f"| {n:,} | {us['sum']:.1f} | {us['numpy']:.1f} | {us['sorted']:.1f} "
            f"| {us['pyinfer']:.1f} | {ratio:.2f} | {'yes' if exact and err < 1e-12 else 'NO'} |"
        )
    print()
    print(
        "pyinfer.summarize at least as fast as numpy at every size"
        if not slower
        else f"pyinfer.summarize slower than numpy at {', '.join(f'{n:,}' for n in slower)}"
    )


if __name__ == "__main__":
    main()
