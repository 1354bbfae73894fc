// LatencyRecorder: thread-safe collection of durations, exact or as a bounded histogram.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/detail/config.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/histogram.hpp"
#include "pyinfer/summary.hpp"

namespace pyinfer {

/// A read-only snapshot of an exact recorder's samples: `data[0 .. size)` stays valid and
/// unchanged for as long as the snapshot (or a copy of its `owner`) lives, whatever the
/// recorder does meanwhile (it copies on write).
struct SampleSnapshot {
  std::shared_ptr<const double[]> owner;
  const double* data = nullptr;
  std::size_t size = 0;
};

/// Collects durations in nanoseconds.
///
/// Exact mode keeps every sample (8 bytes each) and gives exact percentiles. Histogram mode keeps
/// a LogLinearHistogram (fixed memory, O(1) recording) plus exact count, mean, std, min and max;
/// its percentiles are within relative_error() of the exact ones, or 1 ns (values are recorded at
/// 1 ns resolution).
///
/// Thread-safety: every member function, the move constructor and the move assignment included,
/// may be called from any number of threads at once, on the same recorder or on several (each
/// member takes the recorder's mutex; those touching two recorders, merge() and the moves, take
/// both mutexes together, so they cannot deadlock against each other). Each call sees the
/// recorder either wholly before or wholly after any other call, a move included: a thread that
/// reads a recorder while another moves a new one into it sees the old contents or the new ones,
/// never a mix. A moved-from recorder is an empty exact recorder, usable as any other.
/// Destroying a recorder while another thread still uses it is, as for any object, undefined.
class LatencyRecorder {
 public:
  /// An exact recorder.
  LatencyRecorder() = default;

  /// A histogram recorder (see LogLinearHistogram for the arguments and their errors).
  static LatencyRecorder histogram(int significant_digits = 3, std::uint64_t highest_trackable_ns =
                                                                   LogLinearHistogram::kOneHourNs) {
    LatencyRecorder r;
    r.histogram_.emplace(significant_digits, highest_trackable_ns);
    return r;
  }

  /// An exact recorder that takes ownership of `samples` (already validated by the caller: used
  /// by the timed loop, whose durations are non-negative by construction).
  static LatencyRecorder from_samples(std::vector<double>&& samples) {
    LatencyRecorder r;
    r.append_unlocked(samples.data(), samples.size());
    return r;
  }

  /// Takes `other`'s contents under `other`'s lock (no other thread can reach a recorder under
  /// construction); `other` is left an empty exact recorder.
  LatencyRecorder(LatencyRecorder&& other) noexcept {
    std::lock_guard<std::mutex> lock(other.mutex_);
    move_from(other);
  }
  /// Replaces this recorder's contents by `other`'s, with both locked together (std::scoped_lock:
  /// deadlock-free, also against a move or merge the other way round); `other` is left an empty
  /// exact recorder. Moving a recorder into itself changes nothing.
  LatencyRecorder& operator=(LatencyRecorder&& other) noexcept {
    if (this != &other) {
      std::scoped_lock lock(mutex_, other.mutex_);
      move_from(other);
    }
    return *this;
  }
  LatencyRecorder(const LatencyRecorder&) = delete;
  LatencyRecorder& operator=(const LatencyRecorder&) = delete;

  /// Records one duration. @throws InvalidArgument if `ns` is negative or not finite, or (in
  /// histogram mode) above the highest trackable value.
  void record(double ns) {
    check_duration(ns, 0);
    std::lock_guard<std::mutex> lock(mutex_);
    if (histogram_) {
      record_histogram_unlocked(ns);
    } else {
      append_unlocked(&ns, 1);
    }
  }

  /// Records `n` durations. All are validated first: on error nothing is recorded.
  /// @throws InvalidArgument naming the index of the first bad value.
  void record_many(const double* values, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) check_duration(values[i], i);
    std::lock_guard<std::mutex> lock(mutex_);
    if (histogram_) {
      for (std::size_t i = 0; i < n; ++i) {
        if (!fits_histogram(values[i])) throw_too_large(values[i], i);
      }
      record_histogram_batch_unlocked(values, n);
    } else {
      append_unlocked(values, n);
    }
  }

  /// Number of durations recorded.
  std::size_t count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_ ? static_cast<std::size_t>(histogram_->count()) : size_;
  }

  /// Whether this is a histogram recorder (a move assignment may change it).
  bool is_histogram() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_.has_value();
  }

  /// The histogram's settings and size (histogram mode only; 0 otherwise).
  int significant_digits() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_ ? histogram_->significant_digits() : 0;
  }
  std::uint64_t highest_trackable_ns() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_ ? histogram_->highest_trackable() : 0;
  }
  /// Bound on the relative error of percentiles: 0 in exact mode.
  double relative_error() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_ ? histogram_->relative_error() : 0.0;
  }

  /// Bytes of memory this recorder holds for its samples or buckets.
  std::size_t memory_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return histogram_ ? histogram_->memory_bytes() : capacity_ * sizeof(double);
  }

  /// The samples recorded so far (exact mode). @throws InvalidArgument in histogram mode.
  SampleSnapshot samples() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (histogram_) {
      PYINFER_THROW(
          InvalidArgument("a histogram recorder keeps no individual samples; use summary()"));
    }
    return SampleSnapshot{buffer_, buffer_.get(), size_};
  }

  /// Count, mean, std, min, max and the requested percentiles, in one call.
  /// @throws InvalidArgument when nothing was recorded, or for a bad rank or ddof.
  PYINFER_COMPILED Summary summary(const std::vector<double>& percentiles, int ddof = 0,
                                   unsigned threads = 0) const;

  /// Adds everything `other` recorded. Exact + exact concatenates; anything into a histogram
  /// records the other's samples or merges its buckets exactly (same settings required).
  /// @throws InvalidArgument when merging a histogram into an exact recorder or settings differ.
  PYINFER_COMPILED void merge(const LatencyRecorder& other);

  /// Forgets everything recorded (settings are kept). Snapshots taken before stay valid: an
  /// exact recorder lets go of its sample buffer (freed with the last snapshot that reads it)
  /// and records into a new one.
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (histogram_) {
      histogram_->clear();
      moments_n_ = 0;
      mean_ = m2_ = min_ = max_ = 0.0;
      return;
    }
    // Never reused, even when no snapshot seems to hold it: use_count() is a relaxed read, so
    // a snapshot's reads just before it let go would not be ordered before our next writes.
    // The shared_ptr frees it once its last owner is gone (that path is synchronised).
    buffer_.reset();
    capacity_ = 0;
    size_ = 0;
  }

  /// The histogram's non-empty buckets as (lowest value, width, count) triples, ascending.
  /// @throws InvalidArgument in exact mode.
  PYINFER_COMPILED std::vector<std::uint64_t> histogram_buckets() const;

 private:
  static void check_duration(double ns, std::size_t index) {
    if (!(ns >= 0.0) || !std::isfinite(ns)) {  // !(ns >= 0) also catches NaN
      PYINFER_THROW(InvalidArgument("duration " + std::to_string(ns) + " ns at index " +
                                    std::to_string(index) +
                                    " is invalid: durations must be finite and non-negative"));
    }
  }
  // The helpers below (*_unlocked, fits_histogram, throw_too_large, move_from) read or write the
  // recorder's state: callers hold its mutex.

  // Whether the histogram can hold `ns` (valid: finite, >= 0) rounded to whole nanoseconds,
  // compared as integers: the highest trackable value may have no exact double (2^64 - 1 rounds
  // up to 2^64), and a double of 2^64 or more has no uint64 (converting it is undefined).
  bool fits_histogram(double ns) const noexcept {
    const double rounded = std::nearbyint(ns);
    return rounded < 18446744073709551616.0 &&
           static_cast<std::uint64_t>(rounded) <= histogram_->highest_trackable();
  }
  [[noreturn]] void throw_too_large(double ns, std::size_t index) const {
    PYINFER_THROW(InvalidArgument("duration " + std::to_string(ns) + " ns at index " +
                                  std::to_string(index) +
                                  " exceeds the histogram's highest trackable " +
                                  std::to_string(histogram_->highest_trackable()) + " ns"));
  }
  [[noreturn]] static void throw_empty() {
    PYINFER_THROW(InvalidArgument("no samples recorded: nothing to summarize"));
  }

  void move_from(LatencyRecorder& other) noexcept {
    buffer_ = std::move(other.buffer_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    histogram_ = std::move(other.histogram_);
    other.histogram_.reset();
    moments_n_ = std::exchange(other.moments_n_, 0);
    mean_ = std::exchange(other.mean_, 0.0);
    m2_ = std::exchange(other.m2_, 0.0);
    min_ = std::exchange(other.min_, 0.0);
    max_ = std::exchange(other.max_, 0.0);
  }

  // Exact mode: append with amortised doubling; a buffer shared with a snapshot is never
  // written below the snapshot's size, and is dropped (not reused) by clear().
  PYINFER_COMPILED void append_unlocked(const double* values, std::size_t n);

  void record_histogram_unlocked(double ns) {
    if (!fits_histogram(ns)) throw_too_large(ns, 0);
    histogram_->record(static_cast<std::uint64_t>(std::nearbyint(ns)));
    // Welford's update: exact-enough mean and variance without storing samples.
    ++moments_n_;
    const double delta = ns - mean_;
    mean_ += delta / static_cast<double>(moments_n_);
    m2_ += delta * (ns - mean_);
    if (moments_n_ == 1 || ns < min_) min_ = ns;
    if (moments_n_ == 1 || ns > max_) max_ = ns;
  }

  // A validated batch: buckets one by one, moments of the batch by two passes (no division per
  // sample) merged in with Chan's formula.
  void record_histogram_batch_unlocked(const double* values, std::size_t n) {
    if (n == 0) return;
    double sum = 0.0, lo = values[0], hi = values[0];
    for (std::size_t i = 0; i < n; ++i) {
      const double v = values[i];
      histogram_->record(static_cast<std::uint64_t>(std::nearbyint(v)));
      sum += v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const double mean = sum / static_cast<double>(n);
    double dev = 0.0, dev2 = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double d = values[i] - mean;
      dev += d;
      dev2 += d * d;
    }
    // The correction term removes the rounding error of `mean` (the corrected two-pass formula).
    const double m2 = std::max(dev2 - dev * dev / static_cast<double>(n), 0.0);
    merge_moments(n, mean + dev / static_cast<double>(n), m2, lo, hi);
  }

  // Chan et al.'s pairwise combination of (count, mean, M2).
  void merge_moments(std::uint64_t n_b, double mean_b, double m2_b, double min_b, double max_b) {
    if (n_b == 0) return;
    const std::uint64_t n_a = moments_n_;
    if (n_a == 0) {
      moments_n_ = n_b;
      mean_ = mean_b;
      m2_ = m2_b;
      min_ = min_b;
      max_ = max_b;
      return;
    }
    const double na = static_cast<double>(n_a), nb = static_cast<double>(n_b);
    const double n = na + nb;
    const double delta = mean_b - mean_;
    mean_ += delta * nb / n;
    m2_ += m2_b + delta * delta * na * nb / n;
    moments_n_ = n_a + n_b;
    min_ = std::min(min_, min_b);
    max_ = std::max(max_, max_b);
  }

  mutable std::mutex mutex_;
  // exact mode
  std::shared_ptr<double[]> buffer_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  // histogram mode
  std::optional<LogLinearHistogram> histogram_;
  std::uint64_t moments_n_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;
  double min_ = 0.0;
  double max_ = 0.0;
};

#if PYINFER_DETAIL_DEFINE_COMPILED
PYINFER_COMPILED Summary LatencyRecorder::summary(const std::vector<double>& percentiles, int ddof,
                                                  unsigned threads) const {
  validate_percentiles(percentiles);
  std::unique_lock<std::mutex> lock(mutex_);
  if (!histogram_) {
    // A snapshot, then the selection without the lock: writers are not held up by it.
    const SampleSnapshot snap{buffer_, buffer_.get(), size_};
    lock.unlock();
    if (snap.size == 0) throw_empty();
    return summarize(snap.data, snap.size, percentiles, ddof, threads);
  }
  const std::uint64_t n = histogram_->count();
  if (n == 0) throw_empty();
  if (ddof < 0 || static_cast<std::uint64_t>(ddof) >= n) {
    PYINFER_THROW(InvalidArgument("ddof must be in [0, count); got ddof=" + std::to_string(ddof) +
                                  " for " + std::to_string(n) + " samples"));
  }
  Summary s;
  s.count = static_cast<std::size_t>(n);
  s.mean = mean_;
  s.std = std::sqrt(m2_ / static_cast<double>(n - static_cast<std::uint64_t>(ddof)));
  s.min = min_;
  s.max = max_;
  s.percentile_ranks = percentiles;
  s.percentile_values = histogram_->percentiles(percentiles);
  for (double& v : s.percentile_values) v = std::clamp(v, min_, max_);
  s.exact = false;
  s.relative_error = histogram_->relative_error();
  return s;
}

PYINFER_COMPILED void LatencyRecorder::merge(const LatencyRecorder& other) {
  if (&other == this) {
    PYINFER_THROW(InvalidArgument("cannot merge a recorder into itself"));
  }
  std::scoped_lock lock(mutex_, other.mutex_);
  if (!histogram_) {
    if (other.histogram_) {
      PYINFER_THROW(InvalidArgument(
          "cannot merge a histogram recorder into an exact one: its samples are not kept"));
    }
    append_unlocked(other.buffer_.get(), other.size_);
    return;
  }
  if (!other.histogram_) {
    const double* values = other.buffer_.get();
    for (std::size_t i = 0; i < other.size_; ++i) {
      if (!fits_histogram(values[i])) throw_too_large(values[i], i);
    }
    record_histogram_batch_unlocked(values, other.size_);
    return;
  }
  histogram_->merge(*other.histogram_);  // throws on different settings, before any change
  merge_moments(other.moments_n_, other.mean_, other.m2_, other.min_, other.max_);
}

PYINFER_COMPILED std::vector<std::uint64_t> LatencyRecorder::histogram_buckets() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!histogram_) PYINFER_THROW(InvalidArgument("an exact recorder has no histogram buckets"));
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < histogram_->bucket_count(); ++i) {
    const std::uint64_t c = histogram_->bucket_count_at(i);
    if (c == 0) continue;
    out.push_back(histogram_->bucket_lower(i));
    out.push_back(histogram_->bucket_width(i));
    out.push_back(c);
  }
  return out;
}

PYINFER_COMPILED void LatencyRecorder::append_unlocked(const double* values, std::size_t n) {
  if (n == 0) return;
  if (size_ + n > capacity_) {
    std::size_t capacity = std::max<std::size_t>({capacity_ * 2, size_ + n, 1024});
    std::shared_ptr<double[]> grown(new double[capacity]);
    if (size_ > 0) std::memcpy(grown.get(), buffer_.get(), size_ * sizeof(double));
    buffer_ = std::move(grown);
    capacity_ = capacity;
  }
  std::memcpy(buffer_.get() + size_, values, n * sizeof(double));
  size_ += n;
}
#endif

}  // namespace pyinfer
