// Monotonic nanosecond clock, and what it costs to read it.
//
// Header-only: the time-stamp counter machinery behind TickClock (CPUID check, calibration) and
// the definitions are in pyinfer/detail/clock_impl.hpp, included at the end.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <time.h>

#include <cstdint>
#include <string>

namespace pyinfer {

/// Reads the monotonic clock (CLOCK_MONOTONIC: unaffected by wall-clock changes, not counting
/// suspend) in nanoseconds since an unspecified epoch. Thread-safe; on Linux x86-64 it is a
/// vDSO call of about 15-25 ns when the kernel's clocksource is `tsc`.
inline std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

/// The clock the timed loop reads: the CPU's time-stamp counter where it is invariant (constant
/// rate, never stopping, synchronised across cores) and the kernel itself keeps time with it,
/// else now_ns(). The TSC is read with `lfence; rdtsc`, so a read waits for every instruction
/// before it: the second read of a timed call cannot overtake the call. It costs about 10-20 ns
/// against about 24 ns for clock_gettime, and that cost is the bias of every sample and most of
/// the loop's overhead.
///
/// Thread-safety: every member may be called from any thread (the instance is immutable).
class TickClock {
 public:
  /// The process-wide instance; the first call calibrates the TSC against CLOCK_MONOTONIC by
  /// busy-waiting `kCalibrationNs` (5 ms). Thread-safe. Throws only std::bad_alloc.
  static const TickClock& instance();

  /// Current tick count (TSC ticks, or nanoseconds when the TSC is not used). Multiply a
  /// difference of two reads by ns_per_tick() for nanoseconds.
  static std::uint64_t ticks() noexcept;

  /// Nanoseconds per tick (1.0 when the TSC is not used).
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  /// True when ticks() reads the TSC.
  bool uses_tsc() const noexcept { return uses_tsc_; }
  /// "rdtsc (invariant TSC, read after lfence, 2.450 GHz calibrated against CLOCK_MONOTONIC)" or
  /// the fallback, "clock_gettime(CLOCK_MONOTONIC)".
  const std::string& description() const noexcept { return description_; }

  /// How long the calibration busy-waits, in nanoseconds.
  static constexpr std::int64_t kCalibrationNs = 5000000;

 private:
  TickClock();

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

/// Describes the clock and measures the cost of one read: `batches` batches of `reads_per_batch`
/// back-to-back reads each; the median batch gives the cost. Takes about a millisecond with the
/// defaults.
/// @param batches          batches to take the median over; values below 1 count as 1
/// @param reads_per_batch  reads per batch; values below 2 count as 2
/// Thread-safety: thread-safe. Throws only std::bad_alloc.
PYINFER_COMPILED ClockInfo clock_info(int batches = 31, int reads_per_batch = 2000);

}  // namespace pyinfer

#include "pyinfer/detail/clock_impl.hpp"
