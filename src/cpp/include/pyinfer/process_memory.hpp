// Resident memory of this process: current RSS and a resettable peak.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "pyinfer/detail/proc_files.hpp"

namespace pyinfer {

/// Resident set size of this process now, in bytes (Linux: /proc/self/statm). 0 if unknown.
/// Thread-safe.
inline std::uint64_t current_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size_pages = 0, resident_pages = 0;
  const int read = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(f);
  if (read != 2) return 0;
  return static_cast<std::uint64_t>(resident_pages) *
         static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

/// Tracks the peak resident memory of this process over a region that begins at reset().
///
/// Method, detected at each reset() rather than assumed: "clear_refs" where the kernel lets
/// the process reset its high-water mark (writing 5 to /proc/self/clear_refs, Linux >= 4.0) and
/// the reset is seen to take effect; otherwise "sampling": a background thread reads the RSS
/// every `sampling_period` and keeps the maximum, which can miss spikes shorter than the period.
///
/// Thread-safety: all members may be called from any thread.
class PeakRssTracker {
 public:
  /// @param sampling_period  how often the "sampling" fallback reads the RSS (microseconds)
  explicit PeakRssTracker(
      std::chrono::microseconds sampling_period = std::chrono::microseconds(500))
      : period_(sampling_period) {}
  ~PeakRssTracker() { stop_sampler(); }
  PeakRssTracker(const PeakRssTracker&) = delete;
  PeakRssTracker& operator=(const PeakRssTracker&) = delete;

  /// Starts a new region: the peak becomes the current RSS. Returns the method in use.
  /// @throws std::system_error when the sampler thread cannot be started
  std::string reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!force_sampling_ && try_clear_refs()) {
      stop_sampler_locked();
      method_ = "clear_refs";
    } else {
      method_ = "sampling";
      {
        // Under the sampler's lock: a reading the sampler took before this reset cannot be
        // stored after it and carry the old region's peak into the new one.
        std::lock_guard<std::mutex> sample_lock(sampler_mutex_);
        sampled_peak_.store(current_rss_bytes());
      }
      start_sampler_locked();
    }
    return method_;
  }

  /// Peak RSS in bytes since the last reset() (since process start before any reset()); 0 if
  /// the kernel does not say.
  std::uint64_t peak_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (method_ == "sampling") {
      const std::uint64_t now = current_rss_bytes();
      std::uint64_t peak = sampled_peak_.load();
      return now > peak ? now : peak;
    }
    if (method_ == "clear_refs") return detail::proc_status_bytes("VmHWM");
    const std::uint64_t hwm = detail::proc_status_bytes("VmHWM");
    return hwm ? hwm : detail::lifetime_peak_rss_bytes();
  }

  /// "clear_refs", "sampling", or "lifetime" before the first reset().
  std::string method() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return method_;
  }

  /// Tests use this to exercise the fallback on kernels that support clear_refs.
  void force_sampling(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    force_sampling_ = on;
  }

 private:
  static bool try_clear_refs() {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (f == nullptr) return false;
    const bool wrote = std::fputs("5", f) >= 0;
    const bool closed = std::fclose(f) == 0;
    if (!wrote || !closed) return false;
    // Seen to take effect: right after a reset the high-water mark is about the current RSS.
    const std::uint64_t hwm = detail::proc_status_bytes("VmHWM");
    const std::uint64_t rss = current_rss_bytes();
    return hwm != 0 && hwm <= rss + rss / 8 + (4u << 20);
  }

  PYINFER_COMPILED void start_sampler_locked();
  void stop_sampler_locked() {
    if (!sampler_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(sampler_mutex_);
      stop_requested_ = true;
    }
    wake_.notify_all();
    sampler_.join();
  }
  void stop_sampler() {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_sampler_locked();
  }

  std::chrono::microseconds period_;
  mutable std::mutex mutex_;
  std::string method_ = "lifetime";
  bool force_sampling_ = false;
  std::atomic<std::uint64_t> sampled_peak_{0};
  std::thread sampler_;
  std::mutex sampler_mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
};

#if PYINFER_DETAIL_DEFINE_COMPILED
PYINFER_COMPILED void PeakRssTracker::start_sampler_locked() {
  if (sampler_.joinable()) return;
  stop_requested_ = false;
  sampler_ = std::thread([this] {
    // The lock is held from each reading to its update and released only while waiting.
    std::unique_lock<std::mutex> lock(sampler_mutex_);
    while (!stop_requested_) {
      const std::uint64_t now = current_rss_bytes();
      std::uint64_t peak = sampled_peak_.load();
      while (now > peak && !sampled_peak_.compare_exchange_weak(peak, now)) {
      }
      wake_.wait_for(lock, period_, [this] { return stop_requested_; });
    }
  });
}
#endif

}  // namespace pyinfer
