// C++ tests of the open-loop arrivals: the schedules, and the scheduler under several workers
// (scripts/tsan.sh runs this one under ThreadSanitizer too). Short on purpose: about 50 ms.
#include <pyinfer/arrivals.hpp>
#include <pyinfer/clock.hpp>
#include <pyinfer/errors.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

void test_constant_schedule() {
  const std::vector<std::int64_t> offsets = pyinfer::constant_arrivals(1000.0, 4);
  CHECK(offsets == (std::vector<std::int64_t>{0, 1000000, 2000000, 3000000}));
  const std::vector<std::int64_t> thirds = pyinfer::constant_arrivals(3.0, 3);
  CHECK(thirds == (std::vector<std::int64_t>{0, 333333333, 666666667}));
  CHECK_THROWS(pyinfer::constant_arrivals(0.0, 3), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::constant_arrivals(10.0, 0), pyinfer::InvalidArgument);
}

void test_poisson_schedule() {
  const std::size_t n = 20000;
  const std::vector<std::int64_t> a = pyinfer::poisson_arrivals(1000.0, n, 7);
  CHECK(a == pyinfer::poisson_arrivals(1000.0, n, 7));  // a seed gives one schedule
  CHECK(a != pyinfer::poisson_arrivals(1000.0, n, 8));
  CHECK(a[0] == 0);
  double sum = 0.0;
  double sum_sq = 0.0;
  for (std::size_t i = 1; i < n; ++i) {
    CHECK(a[i] >= a[i - 1]);
    const double gap = static_cast<double>(a[i] - a[i - 1]) * 1e-9;
    sum += gap;
    sum_sq += gap * gap;
  }
  // Exponential gaps of rate 1000/s: mean 1 ms and std 1 ms; 20,000 gaps put the sample mean
  // within 2.2% of it with a probability far above 1 - 1e-6 (standard error 0.7%).
  const double mean = sum / static_cast<double>(n - 1);
  const double std = std::sqrt(sum_sq / static_cast<double>(n - 1) - mean * mean);
  CHECK(mean > 0.978e-3 && mean < 1.022e-3);
  CHECK(std > 0.95e-3 && std < 1.05e-3);
  CHECK_THROWS(pyinfer::poisson_arrivals(-1.0, 3, 1), pyinfer::InvalidArgument);
}

void test_bad_schedules() {
  CHECK_THROWS(pyinfer::ArrivalScheduler(std::vector<std::int64_t>{}), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::ArrivalScheduler(std::vector<std::int64_t>{0, 5, 4}),
               pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::ArrivalScheduler(std::vector<std::int64_t>{-1}), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::ArrivalScheduler(std::vector<std::int64_t>{0}, -1),
               pyinfer::InvalidArgument);
  pyinfer::ArrivalScheduler twice(std::vector<std::int64_t>{0});
  twice.start(pyinfer::now_ns());
  CHECK_THROWS(twice.start(pyinfer::now_ns()), pyinfer::InvalidArgument);
}

// Four workers take 200 requests scheduled 100 us apart: each exactly once, never before its
// time, in schedule order per worker; then every worker learns that the schedule is over.
void test_workers_take_each_request_once() {
  constexpr std::size_t kCount = 200;
  constexpr int kWorkers = 4;
  pyinfer::ArrivalScheduler scheduler(pyinfer::constant_arrivals(10000.0, kCount));
  std::vector<std::atomic<int>> taken(kCount);
  std::atomic<int> bad{0};
  std::vector<std::thread> workers;
  const std::int64_t start = pyinfer::now_ns() + 1000000;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      pyinfer::Arrival a;
      std::int64_t last = -1;
      while (scheduler.next(a)) {
        ++taken[a.index];
        if (a.issued_ns < a.scheduled_ns) ++bad;
        if (a.scheduled_ns != start + static_cast<std::int64_t>(a.index) * 100000) ++bad;
        if (a.scheduled_ns <= last) ++bad;
        last = a.scheduled_ns;
      }
      if (!scheduler.finished()) ++bad;
    });
  }
  scheduler.start(start);
  for (auto& t : workers) t.join();
  CHECK(bad.load() == 0);
  for (std::size_t i = 0; i < kCount; ++i) CHECK(taken[i].load() == 1);
  CHECK(scheduler.issued() == kCount);
  CHECK(scheduler.queued() == 0);
}

// stop() wakes a waiting worker at once; a deadline ends a wait without a request.
void test_stop_and_deadline() {
  pyinfer::ArrivalScheduler scheduler(std::vector<std::int64_t>{0, 60000000000LL});
  scheduler.start(pyinfer::now_ns());
  pyinfer::Arrival a;
  CHECK(scheduler.next(a) && a.index == 0);
  const std::int64_t before = pyinfer::now_ns();
  CHECK(!scheduler.next(a, before + 2000000));
  CHECK(pyinfer::now_ns() - before >= 2000000);
  CHECK(!scheduler.finished());
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    scheduler.stop();
  });
  CHECK(!scheduler.next(a));
  stopper.join();
  CHECK(scheduler.finished());
  CHECK(scheduler.issued() == 1);
}

}  // namespace

int main() {
  test_constant_schedule();
  test_poisson_schedule();
  test_bad_schedules();
  test_workers_take_each_request_once();
  test_stop_and_deadline();
  return TEST_MAIN_RESULT();
}
