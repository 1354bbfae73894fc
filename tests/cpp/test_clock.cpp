// C++ tests of pyinfer/clock.hpp: the TSC calibration against CLOCK_MONOTONIC, with fake clocks.
#include <pyinfer/clock.hpp>

#include <cmath>
#include <cstdint>

#include "check.hpp"

namespace {

// A fake machine: every clock read takes time; the counter ticks 2.6 times per nanosecond. One
// preemption of `pause_ns` happens once the time passes `pause_at_ns`, just before or just after
// a counter read: inside a (now, ticks, now) triple.
struct FakeMachine {
  std::int64_t t = 1000000;
  std::int64_t pause_at_ns = -1;
  std::int64_t pause_ns = 0;
  bool pause_before_read = false;

  std::int64_t now() {
    t += 20;
    return t;
  }
  std::uint64_t ticks() {
    const bool pause = pause_at_ns >= 0 && t >= pause_at_ns;
    if (pause && pause_before_read) t += pause_ns;
    t += 5;
    const std::uint64_t value =
        static_cast<std::uint64_t>(std::llround(static_cast<double>(t) * 2.6));
    if (pause && !pause_before_read) t += pause_ns;
    if (pause) pause_at_ns = -1;
    return value;
  }
};

double calibrate(FakeMachine& machine, int tries) {
  return pyinfer::detail::calibrate_ns_per_tick([&machine] { return machine.now(); },
                                                [&machine] { return machine.ticks(); },
                                                pyinfer::TickClock::kCalibrationNs, tries);
}

bool near_truth(double ns_per_tick) { return std::fabs(ns_per_tick * 2.6 - 1.0) < 1e-6; }

void test_calibration_without_preemption() {
  FakeMachine machine;
  CHECK(near_truth(calibrate(machine, 8)));
  FakeMachine single;
  CHECK(near_truth(calibrate(single, 1)));
}

void test_a_preemption_inside_a_triple_does_not_skew_it() {
  for (bool before : {false, true}) {
    for (std::int64_t at : {std::int64_t{1000000}, std::int64_t{3000000}, std::int64_t{5990000}}) {
      FakeMachine machine;
      machine.pause_at_ns = at;
      machine.pause_ns = 20000000;  // 20 ms, a few time slices of a loaded machine
      machine.pause_before_read = before;
      CHECK(near_truth(calibrate(machine, 8)));
    }
  }
  // One triple per end, as before the fix: off by a factor of about 3.
  FakeMachine machine;
  machine.pause_at_ns = 5990000;
  machine.pause_ns = 20000000;
  const double skewed = calibrate(machine, 1);
  CHECK(skewed * 2.6 > 2.0);
}

void test_a_counter_that_does_not_advance() {
  int calls = 0;
  std::int64_t t = 0;
  const double ns_per_tick = pyinfer::detail::calibrate_ns_per_tick([&t] { return t += 1000; },
                                                                    [&calls] {
                                                                      ++calls;
                                                                      return std::uint64_t{42};
                                                                    },
                                                                    5000, 4);
  CHECK(ns_per_tick == 0.0);
  CHECK(calls >= 8);
}

}  // namespace

int main() {
  test_calibration_without_preemption();
  test_a_preemption_inside_a_triple_does_not_skew_it();
  test_a_counter_that_does_not_advance();
  return TEST_MAIN_RESULT();
}
