// One-call statistical summary of a set of samples: count, mean, std, min, max, percentiles.
//
// Percentile definition (stated once, used everywhere in pyinfer): linear interpolation between
// the two closest ranks, exactly numpy's `np.percentile(x, p, method="linear")` (Hyndman & Fan
// type 7): with the samples sorted as x[0] <= ... <= x[n-1], h = (p / 100) * (n - 1),
// i = floor(h), g = h - i, and P(p) = x[i] + g * (x[i+1] - x[i]) (numpy's lerp formulation).
//
// Header-only by default: the definitions, and the selection machinery behind summarize(), are in
// pyinfer/detail/ (summary_impl.hpp, select.hpp, summary_scan.hpp), included at the end. With
// PYINFER_SEPARATE_COMPILATION (the pyinfer::pyinfer CMake target sets it) summarize() is
// declared here and compiled once, in the pyinfer library (src/cpp/lib/pyinfer.cpp): a file
// calling it then compiles in a fraction of the time (docs/native.md, "Compile time").
#pragma once

#include "pyinfer/detail/config.hpp"

#include <array>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "pyinfer/errors.hpp"

namespace pyinfer {

namespace detail {
/// A percentile rank as people write it: 99, 99.9, 33.3 (up to 6 significant digits).
inline std::string format_rank(double rank) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", rank);
  return text;
}
}  // namespace detail

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

  /// The value at percentile rank `rank`, one of the ranks the summary was computed for
  /// (`summary.percentile(99.0)`, not `percentile_values[3]`).
  /// @throws InvalidArgument naming the rank and the ranks there are, if it was not computed
  /// Thread-safety: reentrant.
  double percentile(double rank) const {
    for (std::size_t i = 0; i < percentile_ranks.size() && i < percentile_values.size(); ++i) {
      if (percentile_ranks[i] == rank) return percentile_values[i];
    }
    std::string have;
    for (const double r : percentile_ranks) {
      have += (have.empty() ? "" : ", ") + detail::format_rank(r);
    }
    PYINFER_THROW(InvalidArgument("percentile " + detail::format_rank(rank) +
                                  " was not computed; this summary has " +
                                  (have.empty() ? std::string("none") : have)));
  }
};

/// The percentile ranks reported when the caller names none (the Python API's default):
/// the median, P90, P95, P99 and P99.9.
inline constexpr std::array<double, 5> kDefaultPercentiles{50.0, 90.0, 95.0, 99.0, 99.9};

/// Checks percentile ranks before any work is done.
/// @param ranks  percentile ranks, each finite and within [0, 100]
/// @throws InvalidArgument naming the first rank outside [0, 100] (NaN included)
/// Thread-safety: reentrant.
inline void validate_percentiles(const std::vector<double>& ranks);

/// Percentile `p` of `sorted[0 .. n)`, already in ascending order (the definition above).
/// @param sorted  the values, ascending
/// @param n       how many; at least 1 (not checked)
/// @param p       the rank, in [0, 100] (not checked: see validate_percentiles())
/// @return the value, in the unit of the values
/// Thread-safety: reentrant. Never throws.
inline double percentile_of_sorted(const double* sorted, std::size_t n, double p);

/// Summarises `data[0 .. n)` without modifying or copying it.
///
/// Exact: the percentiles are exactly numpy's `np.percentile(data, p, method="linear")`; the
/// mean and std come from sums shifted by the median, accurate even when the std is a millionth
/// of the mean. From n >= 32768 it reads the data about once (see detail/summary_impl.hpp), on
/// several threads from n >= 65536, in a few milliseconds per ten million samples; extra memory
/// is a few hundred kilobytes plus a few percent of n values. Values are in the samples' unit.
///
/// @param data         the samples; every one must be finite
/// @param n            how many; at least 1 (and more than `ddof`)
/// @param percentiles  ranks in [0, 100], any order, repeats allowed
/// @param ddof         delta degrees of freedom of the std (0 or 1 usually)
/// @param threads      threads to use, the calling one included; 0 picks from the hardware and
///                     `n` (one thread below 65536 samples)
/// @throws InvalidArgument for n == 0, n <= ddof, a non-finite sample (the message names the
///         index of the first) or a bad rank; std::bad_alloc when out of memory
/// Thread-safety: reentrant; `data` must not change during the call.
PYINFER_COMPILED Summary summarize(const double* data, std::size_t n,
                                   const std::vector<double>& percentiles, int ddof = 0,
                                   unsigned threads = 0);

}  // namespace pyinfer

#include "pyinfer/detail/percentile.hpp"
#if PYINFER_DETAIL_DEFINE_COMPILED
#include "pyinfer/detail/summary_impl.hpp"
#endif
