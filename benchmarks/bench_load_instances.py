"""Thread against process instances of ``pyinfer.load_test`` on targets that hold the GIL.

Run: PYTHONPATH=src python benchmarks/bench_load_instances.py [--duration S] [--workers N]
       [--rounds R]

Each target is served at concurrency N by N thread instances and by N process instances
(``instances="processes"``), the two interleaved in each round, in one run:

* ``python``: 2 ms of pure-Python work per request (holds the GIL and a CPU);
* ``gil-wait``: a 2 ms wait in C that keeps the GIL and uses no CPU (a C extension that never
  releases the GIL);
* ``sleep``: ``time.sleep(0.002)``, which releases the GIL: threads serve it in parallel too.

The table gives the achieved requests per second and P99 latency (medians over the rounds) and
the ratio processes / threads. The targets live in this module, imported by its name so that a
process instance can import them by reference (functions of ``__main__`` cannot cross).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

TARGETS = ("python", "gil-wait", "sleep")


def python_2ms() -> None:
    """2 ms of pure-Python work."""
    end = time.perf_counter() + 0.002
    while time.perf_counter() < end:
        pass


def gil_wait_2ms() -> None:
    """A 2 ms wait in C, keeping the GIL (a PyDLL call does not release it)."""
    import ctypes

    ctypes.PyDLL(None).usleep(2000)


def sleep_2ms() -> None:
    """A 2 ms sleep, GIL released."""
    time.sleep(0.002)


def main() -> None:
    """Measures every target with both kinds of instances and prints the table."""
    # Imported by name, not as __main__: what a process instance can import again.
    import bench_load_instances as targets
    import pyinfer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per level")
    parser.add_argument("--workers", type=int, default=2, help="instances and concurrency")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    functions = {
        "python": targets.python_2ms, "gil-wait": targets.gil_wait_2ms,
        "sleep": targets.sleep_2ms,
    }  # fmt: skip
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for _ in range(args.rounds):
        for name in TARGETS:
            for instances in ("threads", "processes"):
                level = pyinfer.load_test(
                    functions[name], concurrency=args.workers, workers=args.workers,
                    duration_s=args.duration, instances=instances,
                ).levels[0]  # fmt: skip
                p99 = level.latency.p99_ms if level.latency else float("nan")
                results.setdefault((name, instances), []).append((level.achieved_qps, p99))
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print("| target | instances | QPS | P99 ms | processes / threads |")
    print("|---|---|---:|---:|---:|")
    for name in TARGETS:
        qps = {
            k: statistics.median(q for q, _ in results[(name, k)]) for k in ("threads", "processes")
        }
        for instances in ("threads", "processes"):
            p99 = statistics.median(p for _, p in results[(name, instances)])
            ratio = f"{qps['processes'] / qps['threads']:.2f}x" if instances == "processes" else ""
            print(f"| {name} | {instances} | {qps[instances]:.0f} | {p99:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
