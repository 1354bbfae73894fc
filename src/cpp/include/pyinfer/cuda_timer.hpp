// CudaEventTimer: GPU-side durations from CUDA event pairs, resolved with one synchronisation.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/clock.hpp"
#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/errors.hpp"

namespace pyinfer {

/// Times work on one CUDA stream with pairs of CUDA events.
///
/// start() and stop() record an event on the stream and return at once (they never wait for the
/// GPU); elapsed_ms() waits once, for the last stop event, and returns the GPU time between each
/// start and its stop in milliseconds (the driver's resolution is about 0.5 microseconds). The
/// pairs then become free again. Events come from a pool created up front (`capacity` pairs) that
/// doubles when more pairs are pending at once; events are created only when the pool grows.
///
/// The stream is an integer handle: 0 is the legacy default stream (in the primary context of
/// `device`), 1 and 2 are CU_STREAM_LEGACY and CU_STREAM_PER_THREAD, anything else a stream
/// created by the caller (e.g. `torch.cuda.current_stream().cuda_stream`), which must outlive
/// the timer's use of it. Events are created in the stream's context.
///
/// Thread-safety: every member function locks an internal mutex, so concurrent calls are safe;
/// pairs from different threads interleave in call order, which rarely means anything.
class CudaEventTimer {
 public:
  /// @param stream    the stream handle to record on (see the class comment)
  /// @param device    the device whose primary context serves the special streams 0, 1, 2
  /// @param capacity  event pairs created up front (at least 1)
  /// @throws CudaUnavailable, InvalidArgument (capacity 0 or no such device), CudaError,
  ///         OutOfMemory.
  explicit CudaEventTimer(std::uintptr_t stream = 0, int device = 0, std::size_t capacity = 1024)
      : stream_(stream), device_(device) {
    if (capacity == 0)
      PYINFER_THROW(InvalidArgument("capacity must be at least 1 event pair, got 0"));
    ctx_ = detail::stream_context(stream, device);
    PYINFER_TRY { grow_unlocked(capacity); }
    PYINFER_CATCH(...) {
      destroy_events();
      PYINFER_RETHROW;
    }
  }

  /// Destroys the events (pending ones are released by the driver when they complete).
  ~CudaEventTimer() { destroy_events(); }

  CudaEventTimer(const CudaEventTimer&) = delete;
  CudaEventTimer& operator=(const CudaEventTimer&) = delete;

  /// Records a start event on the stream. Does not wait for the GPU.
  /// @throws InvalidArgument if the previous start() has no stop() yet; CudaError.
  void start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) {
      PYINFER_THROW(
          InvalidArgument("start() called twice: the previous start() has no stop() yet"));
    }
    if (pairs_ == capacity_unlocked()) grow_unlocked(std::max<std::size_t>(2 * pairs_, 1));
    record_unlocked(events_[2 * pairs_]);
    open_ = true;
  }

  /// Records the stop event matching the last start(). Does not wait for the GPU.
  /// @throws InvalidArgument without a matching start(); CudaError.
  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!open_) PYINFER_THROW(InvalidArgument("stop() without a matching start()"));
    record_unlocked(events_[2 * pairs_ + 1]);
    open_ = false;
    ++pairs_;
  }

  /// Waits for the last stop event (the only synchronisation) and returns the GPU time of each
  /// completed pair, in milliseconds, in recording order; then forgets them, so their events
  /// are reused. Empty (and no wait) when no pair is pending. Blocks for as long as the GPU
  /// needs to reach the last stop event: call it without holding locks others need.
  /// @throws InvalidArgument if a start() has no stop() (nothing is forgotten then); CudaError
  ///         (the pairs are forgotten: after a device error their times mean nothing).
  std::vector<double> elapsed_ms() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) {
      PYINFER_THROW(InvalidArgument(
          "cannot resolve the timings: a start() has no stop() yet (call stop() or reset())"));
    }
    const std::size_t n = std::exchange(pairs_, 0);
    std::vector<double> out(n);
    if (n == 0) return out;
    const detail::DriverApi& api = detail::driver_state().api;
    detail::ScopedContext scope(ctx_);
    // Events on one stream complete in order: the last stop done means every pair is.
    detail::check(api.cuEventSynchronize(events_[2 * n - 1]), "cuEventSynchronize");
    for (std::size_t i = 0; i < n; ++i) {
      float ms = 0.0F;
      detail::check(api.cuEventElapsedTime(&ms, events_[2 * i], events_[2 * i + 1]),
                    "cuEventElapsedTime");
      out[i] = static_cast<double>(ms);
    }
    return out;
  }

  /// Forgets every pending pair and an open start(), without waiting for the GPU.
  void reset() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    pairs_ = 0;
    open_ = false;
  }

  /// Makes the pool hold at least `pairs` event pairs (creating events now, not while timing).
  /// @throws CudaError, OutOfMemory.
  void reserve(std::size_t pairs) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pairs > capacity_unlocked()) grow_unlocked(pairs);
  }

  /// Number of completed (start, stop) pairs not yet resolved by elapsed_ms().
  std::size_t pending() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return pairs_;
  }

  /// True between a start() and its stop().
  bool started() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return open_;
  }

  /// Number of event pairs in the pool.
  std::size_t capacity() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return capacity_unlocked();
  }

  /// The stream handle the events are recorded on.
  std::uintptr_t stream() const noexcept { return stream_; }

  /// The device given at construction.
  int device() const noexcept { return device_; }

  /// Times `iterations` calls of `call()` on the GPU and on the host, after `warmup` untimed
  /// calls. For each timed call: record a start event, read the host clock, `call()`, read the
  /// host clock, record a stop event, store the host duration in nanoseconds into
  /// `host_ns[i]`, then `finish(result)` (outside both timed windows) returns false to stop
  /// early. Nothing waits for the GPU: resolve the GPU times with one elapsed_ms() afterwards.
  ///
  /// @param host_ns  destination of `iterations` host durations in nanoseconds
  /// @return the number of timed calls made (each has a completed event pair and a host
  ///         duration); less than `iterations` when `finish` stopped the loop
  /// @throws InvalidArgument if pairs are pending (call elapsed_ms() or reset() first);
  ///         CudaError from recording; whatever `call` / `finish` throw, after a reset().
  /// Thread-safety: do not use this timer from another thread meanwhile.
  template <class Call, class Finish>
  std::size_t time_calls(Call&& call, Finish&& finish, std::size_t iterations, std::size_t warmup,
                         double* host_ns) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (open_ || pairs_ != 0) {
        PYINFER_THROW(InvalidArgument(
            "time_calls() needs a timer with nothing pending: call elapsed_ms() or reset() "
            "first"));
      }
      if (iterations > capacity_unlocked()) grow_unlocked(iterations);
    }
    for (std::size_t i = 0; i < warmup; ++i) {
      if (!finish(call())) return 0;
    }
    PYINFER_TRY {
      for (std::size_t i = 0; i < iterations; ++i) {
        start();
        const std::int64_t begin = now_ns();
        auto&& result = call();
        const std::int64_t end = now_ns();
        stop();
        host_ns[i] = static_cast<double>(end - begin);
        if (!finish(std::forward<decltype(result)>(result))) return i + 1;
      }
    }
    PYINFER_CATCH(...) {
      reset();
      PYINFER_RETHROW;
    }
    return iterations;
  }

 private:
  std::size_t capacity_unlocked() const noexcept { return events_.size() / 2; }

  void record_unlocked(detail::CUevent event) {
    const detail::DriverApi& api = detail::driver_state().api;
    detail::ScopedContext scope(ctx_);
    detail::check(api.cuEventRecord(event, detail::to_stream(stream_)), "cuEventRecord");
  }

  // Creates events until the pool holds `pairs` pairs. A failure leaves the pool consistent:
  // events created so far are kept (and destroyed with the timer).
  void grow_unlocked(std::size_t pairs) {
    const detail::DriverApi& api = detail::driver_state().api;
    detail::ScopedContext scope(ctx_);
    events_.reserve(2 * pairs);
    while (events_.size() < 2 * pairs) {
      detail::CUevent event = nullptr;
      detail::check(api.cuEventCreate(&event, detail::kEventDefault), "cuEventCreate");
      events_.push_back(event);  // no reallocation: reserved above
    }
  }

  void destroy_events() noexcept {
    if (events_.empty()) return;
    const detail::DriverApi& api = detail::driver_state().api;
    detail::ScopedContext scope(ctx_, std::nothrow);
    for (detail::CUevent event : events_) api.cuEventDestroy(event);  // errors ignored at exit
    events_.clear();
  }

  mutable std::mutex mutex_;
  std::uintptr_t stream_;
  int device_;
  detail::CUcontext ctx_ = nullptr;
  std::vector<detail::CUevent> events_;  // pair i: start 2i, stop 2i+1
  std::size_t pairs_ = 0;                // completed pairs pending resolution
  bool open_ = false;                    // a start() without its stop()
};

}  // namespace pyinfer
