"""The timed loop's time-stamp-counter read, unfenced (`rdtsc`) against fenced variants.

Times a no-op body and a short dependent chain (20 multiply-adds, about 80 cycles) with each way
of reading the TSC, in the timed loop's own structure, alternating the variants round by round;
prints the minimum and the median of each side by side. `pyinfer` is TickClock::ticks() as
shipped (and pyinfer::timed_loop for the no-op), the others are written out in the benchmark.

Run: python benchmarks/bench_tsc_fence.py [--rounds R] [--iterations N] [--cxx g++]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

INCLUDE = Path(__file__).resolve().parent.parent / "src" / "cpp" / "include"

SOURCE = r"""
#include <pyinfer/clock.hpp>
#include <pyinfer/timed_loop.hpp>

#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
struct Rdtsc {  // pyinfer before: no fence
  static std::uint64_t read() { return __rdtsc(); }
};
struct LfenceRdtsc {
  static std::uint64_t read() { _mm_lfence(); return __rdtsc(); }
};
struct Rdtscp {
  static std::uint64_t read() { unsigned aux; return __rdtscp(&aux); }
};
struct LfenceRdtscLfence {
  static std::uint64_t read() { _mm_lfence(); std::uint64_t t = __rdtsc(); _mm_lfence(); return t; }
};
struct Shipped {  // pyinfer now
  static std::uint64_t read() { return pyinfer::TickClock::ticks(); }
};

volatile double seed = 1.0;

// The timed loop's body: two reads around the call, a subtraction and a store.
template <class Clock, class Body>
void loop(Body body, std::size_t n, double ns_per_tick, double* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t start = Clock::read();
    body();
    const std::uint64_t stop = Clock::read();
    out[i] = stop >= start ? static_cast<double>(stop - start) : 0.0;
  }
  for (std::size_t i = 0; i < n; ++i) out[i] *= ns_per_tick;
}

struct Stat { double min, median; };
Stat stat(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}
}  // namespace

int main(int argc, char** argv) {
  const int rounds = std::atoi(argv[1]);
  const std::size_t n = static_cast<std::size_t>(std::atol(argv[2]));
  const pyinfer::TickClock& clock = pyinfer::TickClock::instance();
  if (!clock.uses_tsc()) {
    std::printf("no usable TSC: %s\n", clock.description().c_str());
    return 2;
  }
  const double k = clock.ns_per_tick();
  auto noop = [] {};
  double acc = 0.0;
  auto chain = [&acc] {
    double x = seed;
    for (int j = 0; j < 20; ++j) x = x * 0.999 + 0.5;
    acc += x;
  };
  std::vector<double> out(n);
  const char* names[] = {"rdtsc (before)", "lfence; rdtsc", "rdtscp", "lfence; rdtsc; lfence",
                         "pyinfer now (ticks)", "pyinfer::timed_loop"};
  constexpr int kVariants = 6;
  std::vector<std::vector<double>> mins[2], medians[2];
  for (int b = 0; b < 2; ++b) { mins[b].resize(kVariants); medians[b].resize(kVariants); }
  for (int r = 0; r < rounds; ++r) {
    for (int b = 0; b < 2; ++b) {
      for (int v = 0; v < kVariants; ++v) {
        if (b == 0) {
          switch (v) {
            case 0: loop<Rdtsc>(noop, n, k, out.data()); break;
            case 1: loop<LfenceRdtsc>(noop, n, k, out.data()); break;
            case 2: loop<Rdtscp>(noop, n, k, out.data()); break;
            case 3: loop<LfenceRdtscLfence>(noop, n, k, out.data()); break;
            case 4: loop<Shipped>(noop, n, k, out.data()); break;
            default: pyinfer::timed_loop(noop, n, 0, out.data());
          }
        } else {
          switch (v) {
            case 0: loop<Rdtsc>(chain, n, k, out.data()); break;
            case 1: loop<LfenceRdtsc>(chain, n, k, out.data()); break;
            case 2: loop<Rdtscp>(chain, n, k, out.data()); break;
            case 3: loop<LfenceRdtscLfence>(chain, n, k, out.data()); break;
            case 4: loop<Shipped>(chain, n, k, out.data()); break;
            default: pyinfer::timed_loop(chain, n, 0, out.data());
          }
        }
        const Stat s = stat(out);
        mins[b][v].push_back(s.min);
        medians[b][v].push_back(s.median);
      }
    }
  }
  std::printf("%s, %d rounds x %zu calls, alternating\n", clock.description().c_str(), rounds, n);
  std::printf("%-24s %12s %12s %14s %14s\n", "TSC read", "no-op min", "no-op median",
              "chain-20 min", "chain-20 median");
  for (int v = 0; v < kVariants; ++v) {
    std::printf("%-24s %9.2f ns %9.2f ns %11.2f ns %11.2f ns\n", names[v],
                *std::min_element(mins[0][v].begin(), mins[0][v].end()),
                stat(medians[0][v]).median,
                *std::min_element(mins[1][v].begin(), mins[1][v].end()),
                stat(medians[1][v]).median);
  }
  return acc == 12345.0 ? 1 : 0;
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--cxx", default="g++")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "bench_tsc_fence.cpp"
        source.write_text(SOURCE)
        exe = Path(tmp) / "bench_tsc_fence"
        subprocess.run(
            [args.cxx, "-std=c++17", "-O2", f"-I{INCLUDE}", str(source), "-o", str(exe)],
            check=True,
        )
        subprocess.run([str(exe), str(args.rounds), str(args.iterations)], check=True)


if __name__ == "__main__":
    main()
