// The timed loop: call something N times and store the duration of each call.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <cstddef>
#include <cstdint>
#include <utility>

#include "pyinfer/clock.hpp"
#include "pyinfer/do_not_optimize.hpp"

namespace pyinfer {

/// Calls `call()` `warmup` times untimed, then `iterations` times, storing each call's duration
/// in nanoseconds into `out_ns[0 .. iterations)`.
///
/// The clock (TickClock: the invariant TSC where usable, else CLOCK_MONOTONIC) is read
/// immediately before and after `call()`; `finish(result)` runs outside the timed window
/// (release the result, check for errors or interrupts) and returns false to stop the loop early.
/// Nothing else happens between the two reads, so a sample's bias is one tick read (see
/// clock_info().timed_loop_read_cost_ns). Ticks become nanoseconds after the loop. The first
/// use in a process calibrates the TSC (5 ms, see TickClock).
///
/// The loop does not stop the compiler from optimising `call` itself: a body whose result is
/// unused may be deleted, and one that depends on nothing that changes may be computed once.
/// Pass inputs and results through do_not_optimize() (pyinfer/do_not_optimize.hpp, included
/// here); a value returned by `call` and consumed by `finish` is not enough on its own when
/// `finish` ignores it:
///
///   std::vector<double> ns(1000);
///   double x = 2.0;
///   pyinfer::timed_loop([&] {
///     pyinfer::do_not_optimize(x);            // recompute from x on every call
///     double acc = 0.0;
///     for (int i = 0; i < 1000; ++i) acc += std::sqrt(x + i);
///     pyinfer::do_not_optimize(acc);          // the result is used: the loop stays
///   }, ns.size(), /*warmup=*/100, ns.data());
///
/// Without the two calls, GCC 12 at -O2 deleted the square roots of this body: a median of
/// 0.7 us per call against 2.8 us with them, and 10 ns (the loop gone too) with -fno-math-errno.
///
/// @param call        callable returning a value (any type) that is handed to `finish`
/// @param finish      callable taking that value, returning true to go on
/// @param iterations  number of timed calls; `out_ns` must hold that many doubles
/// @param warmup      untimed calls made first (their results also go through `finish`)
/// @param out_ns      destination of the durations, in nanoseconds
/// @return the number of timed samples written (less than `iterations` if `finish` stopped it,
///         in which case the first `return value` entries are valid)
/// Thread-safety: as thread-safe as `call` and `finish`.
template <class Call, class Finish>
std::size_t timed_loop(Call&& call, Finish&& finish, std::size_t iterations, std::size_t warmup,
                       double* out_ns) {
  const double ns_per_tick = TickClock::instance().ns_per_tick();
  for (std::size_t i = 0; i < warmup; ++i) {
    if (!finish(call())) return 0;
  }
  std::size_t done = iterations;
  for (std::size_t i = 0; i < iterations; ++i) {
    const std::uint64_t start = TickClock::ticks();
    auto&& result = call();
    const std::uint64_t stop = TickClock::ticks();
    // Raw tick deltas for now (a subtraction and a store); scaled below, off the hot path.
    out_ns[i] = stop >= start ? static_cast<double>(stop - start) : 0.0;
    if (!finish(std::forward<decltype(result)>(result))) {
      done = i + 1;
      break;
    }
  }
  for (std::size_t i = 0; i < done; ++i) out_ns[i] *= ns_per_tick;
  return done;
}

/// Convenience overload for a `void` callable that cannot fail: times `iterations` calls.
template <class Call>
std::size_t timed_loop(Call&& call, std::size_t iterations, std::size_t warmup, double* out_ns) {
  auto wrapped = [&call]() -> int {
    call();
    return 0;
  };
  return timed_loop(wrapped, [](int) { return true; }, iterations, warmup, out_ns);
}

}  // namespace pyinfer
