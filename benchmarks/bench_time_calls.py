"""Overhead of pyinfer.time_calls against a hand-written Python timing loop (and torch's Timer).

Run: python benchmarks/bench_time_calls.py [--iterations N] [--rounds R]

For a no-op callable, each method is run `rounds` times, interleaved, and the median round is kept:
- wall ns/iter: the whole loop's wall time over the number of samples it produced;
- median sample: the median duration it recorded for one no-op call;
- bias: median sample minus what the call costs by itself (untimed back-to-back calls from the
  same language: C for time_calls, Python for the hand-written loop).
Target (issue 2): time_calls wall <= 0.35 x the hand-written loop's, and bias < 50 ns.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyinfer
from pyinfer import _core


def noop() -> None:
    return None


def python_loop(iterations: int) -> tuple[float, float]:
    clock = time.perf_counter_ns
    samples = [0] * iterations
    fn = noop
    start = time.perf_counter_ns()
    for i in range(iterations):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    wall = time.perf_counter_ns() - start
    return wall / iterations, statistics.median(samples)


def typical_python_loop(iterations: int) -> tuple[float, float]:
    """The loop most people write: module attribute lookups and list.append."""
    samples: list[int] = []
    fn = noop
    start = time.perf_counter_ns()
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        samples.append(t1 - t0)
    wall = time.perf_counter_ns() - start
    return wall / iterations, statistics.median(samples)


def python_call_cost(iterations: int) -> float:
    fn = noop
    start = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - start) / iterations


def pyinfer_loop(iterations: int) -> tuple[float, float]:
    start = time.perf_counter_ns()
    recorder = pyinfer.time_calls(noop, iterations)
    wall = time.perf_counter_ns() - start
    return wall / iterations, recorder.summary([50.0]).percentile(50.0)


def torch_timer(iterations: int) -> tuple[float, float] | None:
    try:
        from torch.utils.benchmark import Timer
    except ImportError:
        return None
    timer = Timer(stmt="noop()", globals={"noop": noop})
    start = time.perf_counter_ns()
    measurement = timer.timeit(iterations)
    wall = time.perf_counter_ns() - start
    # Timer reports the mean per call over one block; it has no per-call samples.
    return wall / iterations, measurement.median * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    n = args.iterations
    pyinfer.time_calls(noop, 10_000)  # warm up

    rows: dict[str, list[tuple[float, float]]] = {
        "python": [],
        "typical": [],
        "pyinfer": [],
        "torch": [],
    }
    c_cost, py_cost = [], []
    for _ in range(args.rounds):
        rows["python"].append(python_loop(n))
        rows["typical"].append(typical_python_loop(n))
        rows["pyinfer"].append(pyinfer_loop(n))
        timer = torch_timer(n)
        if timer is not None:
            rows["torch"].append(timer)
        c_cost.append(_core._call_loop_ns(noop, n) / n)
        py_cost.append(python_call_cost(n))

    def median_of(name: str) -> tuple[float, float]:
        walls = [w for w, _ in rows[name]]
        samples = [s for _, s in rows[name]]
        return statistics.median(walls), statistics.median(samples)

    clock = pyinfer.clock_info()
    print(f"clock: {clock.source} on {clock.kernel_clocksource}, {clock.read_cost_ns:.1f} ns/read")
    print(
        f"timed loop clock: {clock.timed_loop_clock}, {clock.timed_loop_read_cost_ns:.1f} ns/read"
    )
    print(
        f"no-op call cost by itself: {statistics.median(c_cost):.1f} ns from C, "
        f"{statistics.median(py_cost):.1f} ns from Python"
    )
    print(f"{'method':<34}{'wall ns/iter':>14}{'median sample':>15}{'bias ns':>9}")
    py_wall, py_sample = median_of("python")
    pi_wall, pi_sample = median_of("pyinfer")
    py_bias = py_sample - statistics.median(py_cost)
    pi_bias = pi_sample - statistics.median(c_cost)
    label = "hand-written perf_counter_ns loop"
    print(f"{label:<34}{py_wall:>14.1f}{py_sample:>15.1f}{py_bias:>9.1f}")
    ty_wall, ty_sample = median_of("typical")
    ty_bias = ty_sample - statistics.median(py_cost)
    print(
        f"{'same, with append + attr lookups':<34}{ty_wall:>14.1f}{ty_sample:>15.1f}{ty_bias:>9.1f}"
    )
    print(f"{'pyinfer.time_calls':<34}{pi_wall:>14.1f}{pi_sample:>15.1f}{pi_bias:>9.1f}")
    if rows["torch"]:
        t_wall, t_sample = median_of("torch")
        print(f"{'torch.utils.benchmark.Timer':<34}{t_wall:>14.1f}{t_sample:>15.1f}{'n/a':>9}")
        print(f"ratio time_calls / torch Timer wall: {pi_wall / t_wall:.3f}")
    else:
        print("torch.utils.benchmark.Timer: torch not installed, skipped")
    print(f"ratio time_calls / hand-written wall: {pi_wall / py_wall:.3f} (target <= 0.35)")
    print(f"ratio time_calls / typical loop wall: {pi_wall / ty_wall:.3f}")
    print(f"time_calls bias per sample: {pi_bias:.1f} ns (target < 50 ns)")


if __name__ == "__main__":
    main()
