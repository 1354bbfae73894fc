// An HDR-style log-linear histogram of non-negative integer values (nanoseconds, usually).
//
// Layout: with m sub-bucket bits, values below 2^m each have a bucket of their own (exact);
// above, every power-of-two range [2^e, 2^(e+1)) is split into 2^(m-1) equal buckets of width
// 2^(e-m+1). A value is reported as the midpoint of its bucket, so it is off by less than
// 2^-m of itself. m is the smallest with 2^-m <= 10^-significant_digits (3 digits: m = 10, error
// bound 0.098%). Memory is fixed at construction: (index(highest) + 1) 64-bit counters, about
// 140 KiB for 3 digits up to one hour in nanoseconds. Recording is O(1): a count-leading-zeros,
// a shift and an increment.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pyinfer/errors.hpp"
#include "pyinfer/summary.hpp"

namespace pyinfer {

/// Log-linear histogram. Not thread-safe by itself (LatencyRecorder locks around it).
class LogLinearHistogram {
 public:
  /// One hour in nanoseconds: the default highest trackable value.
  static constexpr std::uint64_t kOneHourNs = 3600ULL * 1000000000ULL;

  /// @param significant_digits  1 to 5: the relative error bound is 10^-digits (or better)
  /// @param highest_trackable   largest value that can be recorded, >= 2
  /// @throws InvalidArgument when either is out of range
  explicit LogLinearHistogram(int significant_digits = 3,
                              std::uint64_t highest_trackable = kOneHourNs)
      : digits_(significant_digits), highest_(highest_trackable) {
    if (significant_digits < 1 || significant_digits > 5) {
      PYINFER_THROW(InvalidArgument("significant_digits must be between 1 and 5, got " +
                                    std::to_string(significant_digits)));
    }
    if (highest_trackable < 2) {
      PYINFER_THROW(InvalidArgument("highest trackable value must be at least 2, got " +
                                    std::to_string(highest_trackable)));
    }
    // Smallest m with 2^-m <= 10^-digits.
    const double needed = static_cast<double>(significant_digits) * std::log2(10.0);
    sub_bits_ = static_cast<int>(std::ceil(needed - 1e-12));
    counts_.assign(index_of(highest_trackable) + 1, 0);
  }

  /// Records `value` `count` times. @throws InvalidArgument if value > highest_trackable().
  void record(std::uint64_t value, std::uint64_t count = 1) {
    if (value > highest_) {
      PYINFER_THROW(InvalidArgument("value " + std::to_string(value) +
                                    " exceeds the histogram's highest trackable value " +
                                    std::to_string(highest_)));
    }
    counts_[index_of(value)] += count;
    if (total_ == 0 || value < min_) min_ = value;
    if (total_ == 0 || value > max_) max_ = value;
    total_ += count;
  }

  /// Adds every count of `other`. @throws InvalidArgument if the two differ in settings.
  void merge(const LogLinearHistogram& other) {
    if (other.digits_ != digits_ || other.highest_ != highest_) {
      PYINFER_THROW(InvalidArgument(
          "cannot merge histograms with different settings (significant digits " +
          std::to_string(digits_) + " vs " + std::to_string(other.digits_) + ", highest " +
          std::to_string(highest_) + " vs " + std::to_string(other.highest_) + ")"));
    }
    if (other.total_ == 0) return;
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    if (total_ == 0 || other.min_ < min_) min_ = other.min_;
    if (total_ == 0 || other.max_ > max_) max_ = other.max_;
    total_ += other.total_;
  }

  /// Forgets every value; keeps the settings and the memory.
  void clear() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = min_ = max_ = 0;
  }

  std::uint64_t count() const noexcept { return total_; }
  /// Exact smallest and largest recorded values (0 when empty).
  std::uint64_t min() const noexcept { return min_; }
  std::uint64_t max() const noexcept { return max_; }
  int significant_digits() const noexcept { return digits_; }
  std::uint64_t highest_trackable() const noexcept { return highest_; }
  int sub_bucket_bits() const noexcept { return sub_bits_; }
  std::size_t bucket_count() const noexcept { return counts_.size(); }
  std::size_t memory_bytes() const noexcept {
    return sizeof(*this) + counts_.capacity() * sizeof(std::uint64_t);
  }
  /// Bound on |reported - exact| / exact for values of at least 1 (2^-sub_bucket_bits()).
  double relative_error() const noexcept { return std::ldexp(1.0, -sub_bits_); }

  /// Bucket index of `value` (value <= highest_trackable()).
  std::size_t index_of(std::uint64_t value) const noexcept {
    const std::uint64_t unit_limit = std::uint64_t{1} << sub_bits_;
    if (value < unit_limit) return static_cast<std::size_t>(value);
    const int exponent = 63 - count_leading_zeros(value);
    const int shift = exponent - sub_bits_ + 1;
    const std::uint64_t half = std::uint64_t{1} << (sub_bits_ - 1);
    return static_cast<std::size_t>(static_cast<std::uint64_t>(shift) * half + (value >> shift));
  }

  /// Smallest value in bucket `index`.
  std::uint64_t bucket_lower(std::size_t index) const noexcept {
    const std::uint64_t unit_limit = std::uint64_t{1} << sub_bits_;
    if (index < unit_limit) return index;
    const std::uint64_t half = std::uint64_t{1} << (sub_bits_ - 1);
    const std::uint64_t shift = index / half - 1;
    const std::uint64_t sub = index - shift * half;
    return sub << shift;
  }

  /// Number of distinct integer values in bucket `index`.
  std::uint64_t bucket_width(std::size_t index) const noexcept {
    const std::uint64_t unit_limit = std::uint64_t{1} << sub_bits_;
    if (index < unit_limit) return 1;
    const std::uint64_t half = std::uint64_t{1} << (sub_bits_ - 1);
    return std::uint64_t{1} << (index / half - 1);
  }

  /// Count in bucket `index`.
  std::uint64_t bucket_count_at(std::size_t index) const noexcept { return counts_[index]; }

  /// Estimated values at the 0-based sorted ranks `ranks[0 .. k)` (each < count()), written to
  /// `out`. One pass over the buckets whatever k is. @throws InvalidArgument on a bad rank.
  PYINFER_COMPILED void values_at_ranks(const std::uint64_t* ranks, std::size_t k,
                                        double* out) const;

  /// Percentiles by the linear definition of summary.hpp, from bucket representatives.
  /// @throws InvalidArgument when empty or for a rank outside [0, 100].
  PYINFER_COMPILED std::vector<double> percentiles(const std::vector<double>& ranks) const;

 private:
  static int count_leading_zeros(std::uint64_t v) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clzll(v);
#else
    int n = 0;
    for (std::uint64_t bit = std::uint64_t{1} << 63; bit && !(v & bit); bit >>= 1) ++n;
    return n;
#endif
  }

  /// The value reported for bucket `index`: its midpoint, clamped to the exact [min, max].
  double representative(std::size_t index) const noexcept {
    const double lower = static_cast<double>(bucket_lower(index));
    const double mid = lower + static_cast<double>(bucket_width(index) - 1) / 2.0;
    return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
  }

  int digits_;
  std::uint64_t highest_;
  int sub_bits_ = 0;
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
};

#if PYINFER_DETAIL_DEFINE_COMPILED
PYINFER_COMPILED void LogLinearHistogram::values_at_ranks(const std::uint64_t* ranks, std::size_t k,
                                                          double* out) const {
  std::vector<std::size_t> order(k);
  for (std::size_t i = 0; i < k; ++i) {
    if (ranks[i] >= total_) {
      PYINFER_THROW(InvalidArgument("rank " + std::to_string(ranks[i]) + " is beyond the " +
                                    std::to_string(total_) + " recorded values"));
    }
    order[i] = i;
  }
  std::sort(order.begin(), order.end(),
            [ranks](std::size_t a, std::size_t b) { return ranks[a] < ranks[b]; });
  std::uint64_t cumulative = 0;
  std::size_t bucket = 0;
  for (std::size_t i : order) {
    while (cumulative + counts_[bucket] <= ranks[i]) cumulative += counts_[bucket++];
    out[i] = representative(bucket);
  }
}

PYINFER_COMPILED std::vector<double> LogLinearHistogram::percentiles(
    const std::vector<double>& ranks) const {
  validate_percentiles(ranks);
  if (total_ == 0) PYINFER_THROW(InvalidArgument("cannot take percentiles of an empty histogram"));
  const std::size_t n = static_cast<std::size_t>(total_);
  std::vector<std::uint64_t> wanted;
  std::vector<double> fractions;
  wanted.reserve(2 * ranks.size());
  for (double p : ranks) {
    std::size_t i;
    double g;
    detail::virtual_index(p, n, &i, &g);
    wanted.push_back(i);
    wanted.push_back(std::min<std::uint64_t>(i + 1, total_ - 1));
    fractions.push_back(g);
  }
  std::vector<double> values(wanted.size());
  values_at_ranks(wanted.data(), wanted.size(), values.data());
  std::vector<double> out(ranks.size());
  for (std::size_t j = 0; j < ranks.size(); ++j) {
    out[j] = detail::lerp(values[2 * j], values[2 * j + 1], fractions[j]);
  }
  return out;
}
#endif

}  // namespace pyinfer
