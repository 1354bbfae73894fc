// One-call statistical summary of a set of samples: count, mean, std, min, max, percentiles.
//
// Percentile definition (stated once, used everywhere in pyinfer): linear interpolation between
// the two closest ranks, exactly numpy's `np.percentile(x, p, method="linear")` (Hyndman & Fan
// type 7): with the samples sorted as x[0] <= ... <= x[n-1], h = (p / 100) * (n - 1),
// i = floor(h), g = h - i, and P(p) = x[i] + g * (x[i+1] - x[i]) (numpy's lerp formulation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pyinfer/errors.hpp"

namespace pyinfer {

/// The summary of a set of samples. Values are in the unit of the samples (nanoseconds for a
/// LatencyRecorder).
struct Summary {
  std::size_t count = 0;
  double mean = 0.0;
  /// Standard deviation with `ddof` delta degrees of freedom (0: population, numpy's default).
  double std = 0.0;
  double min = 0.0;
  double max = 0.0;
  /// The requested percentile ranks, in [0, 100], in the order asked for.
  std::vector<double> percentile_ranks;
  /// The values at those ranks, same order.
  std::vector<double> percentile_values;
  /// True when percentiles are exact; false for a histogram's estimates.
  bool exact = true;
  /// For estimates: the bound on |estimate - exact| / exact. 0 when exact.
  double relative_error = 0.0;
};

/// Throws InvalidArgument unless every rank is finite and within [0, 100].
inline void validate_percentiles(const std::vector<double>& ranks) {
  for (double p : ranks) {
    if (!(p >= 0.0 && p <= 100.0)) {  // also rejects NaN
      throw InvalidArgument("percentile " + std::to_string(p) +
                            " is outside [0, 100]; ask for e.g. 50, 95, 99 or 99.9");
    }
  }
}

namespace detail {

/// numpy's `_lerp`: a + (b - a) * t, computed from the nearer end for accuracy.
inline double lerp(double a, double b, double t) noexcept {
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

/// The virtual index numpy's "linear" method uses: (p / 100) * (n - 1), split into its integer
/// part and fraction.
inline void virtual_index(double p, std::size_t n, std::size_t* index, double* fraction) noexcept {
  const double h = (p / 100.0) * static_cast<double>(n - 1);
  double lo = std::floor(h);
  if (lo < 0.0) lo = 0.0;
  if (lo > static_cast<double>(n - 1)) lo = static_cast<double>(n - 1);
  *index = static_cast<std::size_t>(lo);
  *fraction = h - lo;
}

}  // namespace detail

/// Percentile `p` of `sorted[0 .. n)`, already in ascending order (see the definition above).
inline double percentile_of_sorted(const double* sorted, std::size_t n, double p) {
  std::size_t i;
  double g;
  detail::virtual_index(p, n, &i, &g);
  if (i + 1 >= n) return sorted[n - 1];
  return detail::lerp(sorted[i], sorted[i + 1], g);
}

/// Summarises `data[0 .. n)` without modifying or copying it.
///
/// @param data         the samples; every one must be finite
/// @param n            how many; at least 1 (and more than `ddof`)
/// @param percentiles  ranks in [0, 100], any order, repeats allowed
/// @param ddof         delta degrees of freedom of the std (0 or 1 usually)
/// @param threads      worker threads to use; 0 picks from the hardware and `n`
/// @throws InvalidArgument for n == 0, n <= ddof, a non-finite sample or a bad rank
/// Thread-safety: reentrant; `data` must not change during the call.
inline Summary summarize(const double* data, std::size_t n, const std::vector<double>& percentiles,
                         int ddof = 0, unsigned threads = 0) {
  (void)threads;
  validate_percentiles(percentiles);
  if (n == 0) throw InvalidArgument("cannot summarize zero samples");
  if (ddof < 0 || static_cast<std::size_t>(ddof) >= n) {
    throw InvalidArgument("ddof must be in [0, count); got ddof=" + std::to_string(ddof) + " for " +
                          std::to_string(n) + " samples");
  }
  std::vector<double> sorted(data, data + n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(sorted[i])) {
      throw InvalidArgument("sample " + std::to_string(i) + " is not finite (" +
                            std::to_string(sorted[i]) + ")");
    }
  }
  std::sort(sorted.begin(), sorted.end());
  Summary s;
  s.count = n;
  double sum = 0.0;
  for (double v : sorted) sum += v;
  s.mean = sum / static_cast<double>(n);
  double dev = 0.0, dev2 = 0.0;
  for (double v : sorted) {
    const double d = v - s.mean;
    dev += d;
    dev2 += d * d;
  }
  const double m2 = dev2 - dev * dev / static_cast<double>(n);
  s.std = std::sqrt(std::max(m2, 0.0) / static_cast<double>(n - static_cast<std::size_t>(ddof)));
  s.min = sorted.front();
  s.max = sorted.back();
  s.percentile_ranks = percentiles;
  for (double p : percentiles)
    s.percentile_values.push_back(percentile_of_sorted(sorted.data(), n, p));
  return s;
}

}  // namespace pyinfer
