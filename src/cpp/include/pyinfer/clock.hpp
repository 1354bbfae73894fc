// Monotonic nanosecond clock, and what it costs to read it.
#pragma once

#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <x86intrin.h>
#define PYINFER_HAVE_TSC 1
#else
#define PYINFER_HAVE_TSC 0
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace pyinfer {

/// Reads the monotonic clock (CLOCK_MONOTONIC: unaffected by wall-clock changes, not counting
/// suspend) in nanoseconds since an unspecified epoch. Thread-safe; on Linux x86-64 it is a
/// vDSO call of about 15-25 ns when the kernel's clocksource is `tsc`.
inline std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

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
}  // namespace detail

/// The clock the timed loop reads: the CPU's time-stamp counter where it is invariant (constant
/// rate, never stopping, synchronised across cores) and the kernel itself keeps time with it,
/// else now_ns(). A TSC read costs about 10 ns against about 24 ns for clock_gettime, and that
/// cost is the bias of every sample and most of the loop's overhead.
class TickClock {
 public:
  /// The process-wide instance; the first call calibrates the TSC against CLOCK_MONOTONIC by
  /// busy-waiting `kCalibrationNs` (5 ms). Thread-safe.
  static const TickClock& instance() {
    static const TickClock clock;
    return clock;
  }

  /// Current tick count (TSC ticks, or nanoseconds when the TSC is not used).
  static std::uint64_t ticks() noexcept {
#if PYINFER_HAVE_TSC
    if (instance().uses_tsc_) return __rdtsc();
#endif
    return static_cast<std::uint64_t>(now_ns());
  }

  /// Nanoseconds per tick (1.0 when the TSC is not used).
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  bool uses_tsc() const noexcept { return uses_tsc_; }
  /// "rdtsc (invariant TSC, 2.450 GHz calibrated against CLOCK_MONOTONIC)" or the fallback.
  const std::string& description() const noexcept { return description_; }

  static constexpr std::int64_t kCalibrationNs = 5000000;

 private:
  TickClock() {
#if PYINFER_HAVE_TSC
    if (invariant_tsc() && kernel_clocksource() == "tsc") {
      const double ns_per_tick = detail::calibrate_ns_per_tick(
          now_ns, [] { return static_cast<std::uint64_t>(__rdtsc()); }, kCalibrationNs);
      if (ns_per_tick > 0.0) {
        uses_tsc_ = true;
        ns_per_tick_ = ns_per_tick;
        char text[128];
        std::snprintf(text, sizeof(text),
                      "rdtsc (invariant TSC, %.3f GHz calibrated against CLOCK_MONOTONIC)",
                      1.0 / ns_per_tick_);
        description_ = text;
        return;
      }
    }
#endif
    description_ = "clock_gettime(CLOCK_MONOTONIC)";
  }

#if PYINFER_HAVE_TSC
  static bool invariant_tsc() noexcept {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0x80000000U, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x80000007U) return false;
    __get_cpuid(0x80000007U, &eax, &ebx, &ecx, &edx);
    return (edx & (1U << 8)) != 0;
  }
#endif
  static std::string kernel_clocksource();

  bool uses_tsc_ = false;
  double ns_per_tick_ = 1.0;
  std::string description_;
};

/// What the clock is and what reading it costs.
struct ClockInfo {
  /// The clock read by now_ns(), e.g. "clock_gettime(CLOCK_MONOTONIC)".
  std::string source;
  /// The kernel's clocksource behind it (Linux: "tsc", "kvm-clock", "hpet", ...), or "unknown".
  std::string kernel_clocksource;
  /// The resolution the kernel reports for the clock, in nanoseconds.
  double resolution_ns = 0.0;
  /// Measured cost of one now_ns() call in nanoseconds: the median over `batches` batches.
  double read_cost_ns = 0.0;
  /// Smallest non-zero difference seen between two consecutive reads, in nanoseconds: the
  /// clock's effective granularity (0 if every pair read the same value).
  double min_step_ns = 0.0;
  /// The clock the timed loop reads (TickClock::description()).
  std::string timed_loop_clock;
  /// Measured cost of one TickClock::ticks() call, in nanoseconds.
  double timed_loop_read_cost_ns = 0.0;
};

namespace detail {
/// First line of a small text file (without its newline), or "unknown". C stdio, not iostreams:
/// no locale machinery is touched.
inline std::string read_first_line(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return "unknown";
  char buffer[256];
  const bool ok = std::fgets(buffer, sizeof(buffer), f) != nullptr;
  std::fclose(f);
  if (!ok) return "unknown";
  std::string line(buffer);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line.empty() ? "unknown" : line;
}
}  // namespace detail

inline std::string TickClock::kernel_clocksource() {
  return detail::read_first_line(
      "/sys/devices/system/clocksource/clocksource0/current_clocksource");
}

/// Describes the clock and measures the cost of one read: `batches` batches of `reads_per_batch`
/// back-to-back reads each; the median batch gives the cost. Takes about a millisecond with the
/// defaults. Thread-safe.
inline ClockInfo clock_info(int batches = 31, int reads_per_batch = 2000) {
  ClockInfo info;
  info.source = "clock_gettime(CLOCK_MONOTONIC)";
  info.kernel_clocksource =
      detail::read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
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

}  // namespace pyinfer
