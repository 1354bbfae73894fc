"""What timing your own code costs: profile_callable, measure and a hand-written loop, side by side.

Run: PYTHONPATH=src python benchmarks/bench_timing_code.py [--rounds N] [--json FILE]

Each round times two workloads, a no-op function and ``sum(range(500))`` (about 5 us), in five
ways, the order rotating from round to round so a drift of the shared machine hits all alike:

* ``time_calls``: the native core's timed loop on the bare function (the floor);
* ``profile_callable``: pyinfer's profiler on the callable (its timed call must be the bare
  function, so its median should match the floor);
* ``measure, with m.time()``: a ``with`` block around each call, the core's clock read at each
  end;
* ``measure, decorator``: the function decorated with a measurement;
* ``perf_counter_ns loop``: what one writes by hand, ``time.perf_counter_ns()`` around each call
  and an append.

The table gives each way's median nanoseconds per sample (median over the rounds) and its ratio
to ``time_calls``: for the no-op, the ratio's excess is what the way adds to every sample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pyinfer
from pyinfer.profiling import ProfilerSettings

CALLS = 20_000
SETTINGS = ProfilerSettings(
    warmup_iterations=100,
    warmup_until_settled=False,
    min_iterations=CALLS,
    max_iterations=CALLS,
    min_time_s=0.0,
)


def noop() -> None:
    pass


def small_work() -> int:
    return sum(range(500))


def with_block(fn: Callable[[], object]) -> float:
    with pyinfer.measure("block") as m:
        for _ in range(CALLS):
            with m.time():
                fn()
    return float(np.median(m.samples_ns))


def decorated(fn: Callable[[], object]) -> float:
    timed = pyinfer.measure("decorated")(fn)
    for _ in range(CALLS):
        timed()
    return float(np.median(timed.measurement.samples_ns))  # type: ignore[attr-defined]


def hand_loop(fn: Callable[[], object]) -> float:
    now, samples = time.perf_counter_ns, []
    for _ in range(CALLS):
        start = now()
        fn()
        samples.append(now() - start)
    return float(np.median(samples))


WAYS: dict[str, Callable[[Callable[[], object]], float]] = {
    "time_calls": lambda fn: float(np.median(pyinfer.time_calls(fn, CALLS, 100).samples())),
    "profile_callable": lambda fn: (
        pyinfer.profile_callable(fn, settings=SETTINGS).latency.stats.median_ms * 1e6
    ),
    "measure, with m.time()": with_block,
    "measure, decorator": decorated,
    "perf_counter_ns loop": hand_loop,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workloads = {"no-op": noop, "sum(range(500))": small_work}
    names = list(WAYS)
    results: dict[str, dict[str, list[float]]] = {w: {n: [] for n in names} for w in workloads}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for workload, fn in workloads.items():
            for name in order:
                results[workload][name].append(WAYS[name](fn))
    table = {
        w: {n: statistics.median(values) for n, values in ways.items()}
        for w, ways in results.items()
    }
    print(f"Median ns per sample, median of {args.rounds} rounds ({CALLS:,} samples each)")
    print(f"| way | {' | '.join(workloads)} |")
    print("|---|" + "---:|" * len(workloads))
    for name in names:
        cells = [
            f"{table[w][name]:.0f} ({table[w][name] / table[w]['time_calls']:.2f}x)"
            for w in workloads
        ]
        print(f"| {name} | {' | '.join(cells)} |")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "median_ns": table}, indent=2))


if __name__ == "__main__":
    main()
