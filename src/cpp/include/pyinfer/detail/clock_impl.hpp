// Definitions of clock.hpp, and the time-stamp counter machinery behind TickClock. Internal to
// pyinfer: include pyinfer/clock.hpp.
#pragma once

#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define PYINFER_HAVE_TSC 1
#else
#define PYINFER_HAVE_TSC 0
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "pyinfer/clock.hpp"
#include "pyinfer/detail/proc_files.hpp"

namespace pyinfer {

namespace detail {
/// Nanoseconds per tick of a counter `ticks()`, calibrated against the nanosecond clock `now()`
/// over at least `span_ns`: (now, ticks, now) triples at both ends, the tick read taken to sit at
/// its triple's midpoint. Each end is the narrowest of `tries` consecutive triples: the busy-wait
/// is nothing but triples, so on a loaded machine a preemption lands inside one, whose midpoint
/// then lies up to half the preemption away from its tick read (with one triple per end, a
/// 2.6 GHz TSC was calibrated at 0.5 GHz and every duration came out 5 times too long).
/// @return 0 when the counter did not advance
template <class Now, class Ticks>
double calibrate_ns_per_tick(Now&& now, Ticks&& ticks, std::int64_t span_ns, int tries = 8) {
  auto narrowest = [&](double* mid, std::uint64_t* tick) {
    std::int64_t best = -1;
    for (int i = 0; i < tries; ++i) {
      const std::int64_t a = now();
      const std::uint64_t t = ticks();
      const std::int64_t b = now();
      if (best < 0 || b - a < best) {
        best = b - a;
        *mid = 0.5 * static_cast<double>(a) + 0.5 * static_cast<double>(b);
        *tick = t;
      }
    }
  };
  double m0 = 0.0, m1 = 0.0;
  std::uint64_t c0 = 0, c1 = 0;
  narrowest(&m0, &c0);
  do {
    narrowest(&m1, &c1);
  } while (m1 - m0 < static_cast<double>(span_ns));
  return c1 > c0 ? (m1 - m0) / static_cast<double>(c1 - c0) : 0.0;
}

#if PYINFER_HAVE_TSC
/// Reads the TSC after every earlier instruction has completed (`lfence; rdtsc`). A bare `rdtsc`
/// may execute before the work it is meant to follow: a timed loop's second read then overtakes
/// the call, and a no-op came out at 0.4 ns minimum beside a 10 ns median while a chain of 20
/// multiply-adds (30 ns) read 10 ns (benchmarks/bench_tsc_fence.py). No fence after the read:
/// the work may start while it completes, which shortens a sample by at most the read's own
/// latency, where a second fence would add about 10 ns to every sample.
inline std::uint64_t read_tsc() noexcept {
  // The compiler builtins behind _mm_lfence() and __rdtsc(): <x86intrin.h> alone costs a
  // translation unit about 0.7 s of compile time (benchmarks/bench_cpp_compile.py).
  __builtin_ia32_lfence();
  return __builtin_ia32_rdtsc();
}

/// True when the CPU says its TSC is invariant (CPUID leaf 0x80000007, EDX bit 8).
inline bool invariant_tsc() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000000U, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x80000007U) return false;
  __get_cpuid(0x80000007U, &eax, &ebx, &ecx, &edx);
  return (edx & (1U << 8)) != 0;
}
#endif
}  // namespace detail

inline const TickClock& TickClock::instance() {
  static const TickClock clock;
  return clock;
}

inline std::uint64_t TickClock::ticks() noexcept {
#if PYINFER_HAVE_TSC
  if (instance().uses_tsc_) return detail::read_tsc();
#endif
  return static_cast<std::uint64_t>(now_ns());
}

inline TickClock::TickClock() {
#if PYINFER_HAVE_TSC
  if (detail::invariant_tsc() && detail::kernel_clocksource() == "tsc") {
    const double ns_per_tick =
        detail::calibrate_ns_per_tick(now_ns, [] { return detail::read_tsc(); }, kCalibrationNs);
    if (ns_per_tick > 0.0) {
      uses_tsc_ = true;
      ns_per_tick_ = ns_per_tick;
      char text[128];
      std::snprintf(
          text, sizeof(text),
          "rdtsc (invariant TSC, read after lfence, %.3f GHz calibrated against CLOCK_MONOTONIC)",
          1.0 / ns_per_tick_);
      description_ = text;
      return;
    }
  }
#endif
  description_ = "clock_gettime(CLOCK_MONOTONIC)";
}

#if PYINFER_DETAIL_DEFINE_COMPILED
PYINFER_COMPILED ClockInfo clock_info(int batches, int reads_per_batch) {
  ClockInfo info;
  info.source = "clock_gettime(CLOCK_MONOTONIC)";
  info.kernel_clocksource = detail::kernel_clocksource();
  timespec res;
  if (clock_getres(CLOCK_MONOTONIC, &res) == 0) {
    info.resolution_ns = static_cast<double>(res.tv_sec) * 1e9 + static_cast<double>(res.tv_nsec);
  }
  batches = std::max(batches, 1);
  reads_per_batch = std::max(reads_per_batch, 2);
  std::vector<double> per_read(static_cast<std::size_t>(batches));
  std::int64_t min_step = 0;
  for (int b = 0; b < batches; ++b) {
    const std::int64_t start = now_ns();
    std::int64_t previous = start;
    for (int i = 0; i < reads_per_batch; ++i) {
      const std::int64_t t = now_ns();
      const std::int64_t step = t - previous;
      if (step > 0 && (min_step == 0 || step < min_step)) min_step = step;
      previous = t;
    }
    per_read[static_cast<std::size_t>(b)] =
        static_cast<double>(previous - start) / static_cast<double>(reads_per_batch);
  }
  auto middle = per_read.begin() + static_cast<std::ptrdiff_t>(per_read.size() / 2);
  std::nth_element(per_read.begin(), middle, per_read.end());
  info.read_cost_ns = *middle;
  info.min_step_ns = static_cast<double>(min_step);

  const TickClock& ticks = TickClock::instance();
  info.timed_loop_clock = ticks.description();
  for (int b = 0; b < batches; ++b) {
    const std::int64_t start = now_ns();
    std::uint64_t sink = 0;
    for (int i = 0; i < reads_per_batch; ++i) sink += TickClock::ticks();
    const std::int64_t stop = now_ns();
    per_read[static_cast<std::size_t>(b)] =
        static_cast<double>(stop - start) / static_cast<double>(reads_per_batch) +
        static_cast<double>(sink & 0U);
  }
  std::nth_element(per_read.begin(), middle, per_read.end());
  info.timed_loop_read_cost_ns = *middle;
  return info;
}
#endif

}  // namespace pyinfer
