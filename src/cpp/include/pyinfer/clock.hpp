// Monotonic nanosecond clock, and what it costs to read it.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
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
};

namespace detail {
inline std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "unknown";
  return line;
}
}  // namespace detail

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
  return info;
}

}  // namespace pyinfer
