// The percentile definition of summary.hpp, and the small pieces of it the histogram shares.
// Internal to pyinfer: include pyinfer/summary.hpp. Always inline (a separately compiled pyinfer
// keeps only summarize() itself out of the headers).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "pyinfer/errors.hpp"
#include "pyinfer/summary.hpp"

namespace pyinfer {

inline void validate_percentiles(const std::vector<double>& ranks) {
  for (double p : ranks) {
    if (!(p >= 0.0 && p <= 100.0)) {  // also rejects NaN
      PYINFER_THROW(InvalidArgument("percentile " + std::to_string(p) +
                                    " is outside [0, 100]; ask for e.g. 50, 95, 99 or 99.9"));
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

inline double percentile_of_sorted(const double* sorted, std::size_t n, double p) {
  std::size_t i;
  double g;
  detail::virtual_index(p, n, &i, &g);
  if (i + 1 >= n) return sorted[n - 1];
  return detail::lerp(sorted[i], sorted[i + 1], g);
}

}  // namespace pyinfer
