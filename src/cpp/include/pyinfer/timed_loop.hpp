// The timed loop: call something N times and store the duration of each call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "pyinfer/clock.hpp"

namespace pyinfer {

/// Calls `call()` `warmup` times untimed, then `iterations` times, storing each call's duration
/// in nanoseconds into `out_ns[0 .. iterations)`.
///
/// The clock is read immediately before and after `call()`; `finish(result)` runs outside the
/// timed window (release the result, check for errors or interrupts) and returns false to stop
/// the loop early. Nothing else happens between the two reads, so a sample's bias is one clock
/// read (see clock_info().read_cost_ns).
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
  for (std::size_t i = 0; i < warmup; ++i) {
    if (!finish(call())) return 0;
  }
  for (std::size_t i = 0; i < iterations; ++i) {
    const std::int64_t start = now_ns();
    auto&& result = call();
    const std::int64_t stop = now_ns();
    out_ns[i] = static_cast<double>(stop - start);
    if (!finish(std::forward<decltype(result)>(result))) return i + 1;
  }
  return iterations;
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
