// Open-loop arrivals: a schedule of request times, and a thread that issues each request on time.
//
// A load test issues requests on a schedule that does not wait for replies (MLPerf LoadGen's
// Server scenario, wrk2). ArrivalScheduler owns one thread that sleeps, then busy-waits, to each
// scheduled time on the core's clock (now_ns()), stamps the time it issued the request and
// queues it; workers block in next() for the next request. No Python runs on the scheduler
// thread, so it keeps time while workers hold Python's GIL.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "pyinfer/clock.hpp"
#include "pyinfer/errors.hpp"

namespace pyinfer {

/// One issued request: its position in the schedule and its two times, in now_ns() nanoseconds.
struct Arrival {
  /// 0-based position in the schedule.
  std::size_t index = 0;
  /// When the schedule said to issue it (start + offset).
  std::int64_t scheduled_ns = 0;
  /// When the scheduler thread issued it (queued it for a worker).
  std::int64_t issued_ns = 0;
};

namespace detail {
inline void check_rate(double qps, std::size_t count) {
  if (!(qps > 0.0) || !std::isfinite(qps)) {
    PYINFER_THROW(InvalidArgument(
        "the request rate must be a finite number above 0 per second, got " + std::to_string(qps)));
  }
  if (count == 0) PYINFER_THROW(InvalidArgument("a schedule needs at least one request"));
}
}  // namespace detail

/// Offsets, in nanoseconds from the start, of `count` requests at a constant `qps`: i / qps.
/// @throws InvalidArgument when qps is not a finite number above 0 or count is 0
inline std::vector<std::int64_t> constant_arrivals(double qps, std::size_t count) {
  detail::check_rate(qps, count);
  std::vector<std::int64_t> offsets(count);
  for (std::size_t i = 0; i < count; ++i) {
    offsets[i] = static_cast<std::int64_t>(std::llround(static_cast<double>(i) * 1e9 / qps));
  }
  return offsets;
}

/// Offsets, in nanoseconds from the start, of `count` requests of a Poisson process of rate
/// `qps`: the first at 0, then exponentially distributed gaps of mean 1/qps (std::mt19937_64
/// seeded with `seed`, so a seed gives the same schedule on every run of one standard library).
/// @throws InvalidArgument when qps is not a finite number above 0 or count is 0
PYINFER_COMPILED std::vector<std::int64_t> poisson_arrivals(double qps, std::size_t count,
                                                            std::uint64_t seed);

/// Issues the requests of a schedule on time, from a thread of its own, to workers that wait in
/// next(). Thread-safety: every member may be called from any thread; next() by any number of
/// workers at once. The destructor stops and joins the thread.
class ArrivalScheduler {
 public:
  /// How long before a scheduled time the thread stops sleeping and busy-waits, by default:
  /// sleeps overshoot by tens of microseconds (timer slack, wake-up), the spin does not.
  static constexpr std::int64_t kDefaultSpinNs = 200000;

  /// @param offsets_ns  non-decreasing offsets from the start, in nanoseconds, each >= 0
  /// @param spin_ns     busy-wait this long before each scheduled time (>= 0)
  /// @throws InvalidArgument on an empty, negative or decreasing schedule or a negative spin
  explicit ArrivalScheduler(std::vector<std::int64_t> offsets_ns,
                            std::int64_t spin_ns = kDefaultSpinNs)
      : offsets_(std::move(offsets_ns)), spin_ns_(spin_ns) {
    if (offsets_.empty()) PYINFER_THROW(InvalidArgument("a schedule needs at least one request"));
    if (spin_ns < 0) {
      PYINFER_THROW(InvalidArgument("spin_ns must be at least 0, got " + std::to_string(spin_ns)));
    }
    for (std::size_t i = 0; i < offsets_.size(); ++i) {
      if (offsets_[i] < 0 || (i > 0 && offsets_[i] < offsets_[i - 1])) {
        PYINFER_THROW(InvalidArgument("schedule offsets must be non-decreasing and >= 0; offset " +
                                      std::to_string(i) + " is " + std::to_string(offsets_[i])));
      }
    }
  }

  ArrivalScheduler(const ArrivalScheduler&) = delete;
  ArrivalScheduler& operator=(const ArrivalScheduler&) = delete;

  ~ArrivalScheduler() {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  /// Starts issuing: request i is due at start_ns + offsets[i] (now_ns() time). A start in the
  /// past issues the overdue requests at once, each stamped with its true issue time.
  /// @throws InvalidArgument when called twice
  PYINFER_COMPILED void start(std::int64_t start_ns);

  /// Waits for the next issued request and takes it. Returns true with `out` filled; false when
  /// the wait passed `deadline_ns` (now_ns() time; negative: no deadline), or when every request
  /// was taken or stop() was called (finished() tells these apart).
  bool next(Arrival& out, std::int64_t deadline_ns = -1) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (!queue_.empty()) {
        out = queue_.front();
        queue_.pop_front();
        return true;
      }
      if (stopped_ || issued_ == offsets_.size()) return false;
      if (deadline_ns < 0) {
        ready_.wait(lock);
      } else {
        const std::int64_t left = deadline_ns - now_ns();
        if (left <= 0) return false;
        ready_.wait_for(lock, std::chrono::nanoseconds(left));
      }
    }
  }

  /// Stops issuing; requests already queued can still be taken. Wakes every waiting worker.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    stop_flag_.store(true, std::memory_order_relaxed);
    ready_.notify_all();
  }

  /// True when no request is queued and none will be: all issued and taken, or stopped.
  bool finished() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.empty() && (stopped_ || issued_ == offsets_.size());
  }

  /// Requests issued so far.
  std::size_t issued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return issued_;
  }

  /// Requests in the schedule.
  std::size_t size() const noexcept { return offsets_.size(); }

  /// Issued but not yet taken by a worker.
  std::size_t queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }

 private:
  // Sleeps in slices of at most 10 ms (so stop() is seen) to `due - spin_ns_`, then spins.
  void wait_until(std::int64_t due) const {
    for (;;) {
      if (stop_flag_.load(std::memory_order_relaxed)) return;
      const std::int64_t left = due - now_ns();
      if (left <= 0) return;
      if (left <= spin_ns_) continue;
      const std::int64_t nap = std::min<std::int64_t>(left - spin_ns_, 10000000);
      timespec ts{static_cast<time_t>(nap / 1000000000), static_cast<long>(nap % 1000000000)};
      nanosleep(&ts, nullptr);
    }
  }

  void run() {
#if defined(__linux__)
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // this thread's sleeps: 1 ns slack, not 50 us
#endif
    for (std::size_t i = 0; i < offsets_.size(); ++i) {
      const std::int64_t due = start_ns_ + offsets_[i];
      wait_until(due);
      if (stop_flag_.load(std::memory_order_relaxed)) return;
      const Arrival arrival{i, due, now_ns()};
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_) return;
        queue_.push_back(arrival);
        ++issued_;
      }
      ready_.notify_one();
    }
    ready_.notify_all();  // the last one issued: idle workers learn that nothing more comes
  }

  const std::vector<std::int64_t> offsets_;
  const std::int64_t spin_ns_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Arrival> queue_;
  std::size_t issued_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stop_flag_{false};
  std::int64_t start_ns_ = 0;
  std::thread thread_;
};

}  // namespace pyinfer

#if PYINFER_DETAIL_DEFINE_COMPILED
#include "pyinfer/detail/arrivals_impl.hpp"
#endif
