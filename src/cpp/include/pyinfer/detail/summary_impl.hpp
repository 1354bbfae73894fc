// Definitions of summary.hpp's functions. Internal to pyinfer: include pyinfer/summary.hpp.
//
// summarize(), the exact fast path:
// Below kSortBelow samples, summarize() copies and sorts. Above, it never copies the data:
//  1. It draws a fixed-seed random sample (with replacement) of up to kSampleSize values
//     (computing the indices first and prefetching the random reads ahead) and selects in it. The
//     sample median is the shift K of the moments, and for every rank r the percentiles need, the
//     sample gives a bracket [lo, hi] that holds the r-th smallest value with overwhelming
//     probability (kBracketSigmas binomial standard deviations on either side).
//  2. One pass over the data (on several threads for large n) adds up sum(x - K) and
//     sum((x - K)^2) in blocks, finds min and max, checks every value is finite, counts for every
//     "cut" t the values x < t, and copies out the few values inside a bracket. An end of a
//     bracket that is repeated in the sample is split off as a single-value region (counted, not
//     copied), so heavily repeated data never copies much.
//  3. Every wanted rank is found from the counts: in a copied region by nth_element over the few
//     copies (different regions on two threads when there are two), in a single-value region
//     directly. A rank that fell outside its bracket (an unlucky
//     sample, or data built against the fixed seed) costs one more pass that copies exactly the
//     regions holding such ranks: always exact, rarely slower.
// Since |mean - median| <= std for any distribution, the sums shifted by the sample median stay
// accurate even when the std is a tiny fraction of the mean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pyinfer/detail/percentile.hpp"
#include "pyinfer/detail/select.hpp"
#include "pyinfer/detail/summary_scan.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/summary.hpp"

namespace pyinfer {

namespace detail {

[[noreturn]] inline void throw_non_finite(std::size_t index, double value) {
  PYINFER_THROW(InvalidArgument("sample " + std::to_string(index) + " is not finite (" +
                                std::to_string(value) + ")"));
}

/// Throws for the first non-finite value of data[0 .. n), if any.
inline void check_finite(const double* data, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) throw_non_finite(i, data[i]);
  }
}

/// Fills the percentile values of `s` from `value_at(rank)`, by percentile_of_sorted's rule.
template <class ValueAt>
void fill_percentiles(Summary* s, const std::vector<double>& percentiles, ValueAt value_at) {
  s->percentile_ranks = percentiles;
  s->percentile_values.clear();
  s->percentile_values.reserve(percentiles.size());
  for (double p : percentiles) {
    std::size_t i;
    double g;
    virtual_index(p, s->count, &i, &g);
    s->percentile_values.push_back(i + 1 >= s->count ? value_at(s->count - 1)
                                                     : lerp(value_at(i), value_at(i + 1), g));
  }
}

/// Mean and std from sums shifted by `shift`.
inline void finish_moments(Summary* s, double shift, double s1, double s2, int ddof) {
  const double n = static_cast<double>(s->count);
  s->mean = shift + s1 / n;
  const double m2 = s2 - s1 * (s1 / n);
  s->std =
      std::sqrt(std::max(m2, 0.0) / static_cast<double>(s->count - static_cast<std::size_t>(ddof)));
}

/// The 0-based ranks the percentiles need (ascending, distinct), besides 0 and n - 1: the min
/// and the max, which the scan finds anyway.
inline std::vector<std::size_t> inner_ranks(const std::vector<double>& percentiles, std::size_t n) {
  std::vector<std::size_t> ranks;
  for (double p : percentiles) {
    std::size_t i;
    double g;
    virtual_index(p, n, &i, &g);
    ranks.push_back(i);
    if (i + 1 < n) ranks.push_back(i + 1);
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  ranks.erase(std::remove_if(ranks.begin(), ranks.end(),
                             [n](std::size_t r) { return r == 0 || r == n - 1; }),
              ranks.end());

  return ranks;
}

/// The fixed-seed random sample of `data[0 .. n)` (at sample_indices(n): splitmix64, with
/// replacement). @throws InvalidArgument for the first non-finite value of the data when the
/// sample holds one.
inline std::vector<double> draw_sample(const double* data, std::size_t n) {
  std::vector<double> sample(std::min(kSampleSize, n / 2));
  const std::size_t s = sample.size();
  {
    // The indices first, then the loads, a few ahead: random reads miss the caches.
    const std::vector<std::size_t> at = sample_indices(n);
    constexpr std::size_t kAhead = 32;
    for (std::size_t k = 0; k < s; ++k) {
#if defined(__GNUC__)
      if (k + kAhead < s) __builtin_prefetch(data + at[k + kAhead]);
#endif
      sample[k] = data[at[k]];
    }
  }
  for (double v : sample) {
    if (!std::isfinite(v)) check_finite(data, n);  // throws for the first one
  }
  return sample;
}

/// summarize() for small n: copy, then select the ranks the percentiles need (with the min, the
/// max and the middle, the shift of the moments) by nth_element: linear time, where a full sort
/// took n log n (slower than numpy.percentile from a few thousand samples).
inline Summary summarize_by_sorting(const double* data, std::size_t n,
                                    const std::vector<double>& percentiles, int ddof) {
  check_finite(data, n);
  std::vector<double> values(data, data + n);
  std::vector<std::size_t> ranks = inner_ranks(percentiles, n);
  ranks.push_back(0);
  ranks.push_back(n - 1);
  ranks.push_back(n / 2);
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  select_ranks(values.data(), 0, n, ranks.data(), ranks.size());
  Summary s;
  s.count = n;
  const double shift = values[n / 2];
  CompensatedSum s1, s2;
  for (std::size_t b = 0; b < n; b += kScanBlock) {
    const BlockMoments m = moments_block<2>(values.data() + b, std::min(kScanBlock, n - b), shift);
    s1.add(m.s1);
    s2.add(m.s2);
  }
  finish_moments(&s, shift, s1.value(), s2.value(), ddof);
  s.min = values.front();
  s.max = values.back();
  fill_percentiles(&s, percentiles, [&](std::size_t r) { return values[r]; });
  return s;
}

}  // namespace detail

PYINFER_COMPILED Summary summarize(const double* data, std::size_t n,
                                   const std::vector<double>& percentiles, int ddof,
                                   unsigned threads) {
  validate_percentiles(percentiles);
  if (n == 0) PYINFER_THROW(InvalidArgument("cannot summarize zero samples"));
  if (ddof < 0 || static_cast<std::size_t>(ddof) >= n) {
    PYINFER_THROW(InvalidArgument("ddof must be in [0, count); got ddof=" + std::to_string(ddof) +
                                  " for " + std::to_string(n) + " samples"));
  }
  if (n < detail::kSortBelow) return detail::summarize_by_sorting(data, n, percentiles, ddof);
  const double inf = std::numeric_limits<double>::infinity();

  const std::vector<std::size_t> ranks = detail::inner_ranks(percentiles, n);

  // 1. A fixed-seed random sample: the shift and the brackets.
  std::vector<double> sample = detail::draw_sample(data, n);
  const detail::ScanPlan plan = detail::plan_first_scan(sample, ranks, n);

  // 2. The pass over the data.
  const unsigned t = detail::summary_threads(n, threads);
  std::vector<detail::ScanPart> parts = detail::scan(plan, data, n, t);
  Summary out;
  out.count = n;
  out.min = inf;
  out.max = -inf;
  detail::CompensatedSum s1, s2;
  std::size_t first_bad = static_cast<std::size_t>(-1);
  for (const detail::ScanPart& p : parts) {
    first_bad = std::min(first_bad, p.first_non_finite);
    s1.add(p.s1.value());
    s2.add(p.s2.value());
    out.min = std::min(out.min, p.min);
    out.max = std::max(out.max, p.max);
  }
  if (first_bad != static_cast<std::size_t>(-1)) {
    detail::throw_non_finite(first_bad, data[first_bad]);
  }
  detail::finish_moments(&out, plan.shift, s1.value(), s2.value(), ddof);

  // 3. The ranks, from the counts and the copies.
  std::vector<double> values(ranks.size(), 0.0);
  std::vector<std::uint8_t> known(ranks.size(), 0);
  std::vector<std::int64_t> below = detail::total_below(parts, plan.cuts.size());
  detail::resolve_ranks(plan, below, parts, n, ranks, &values, &known, t);
  if (std::find(known.begin(), known.end(), 0) != known.end()) {
    // Rare: some rank fell outside its bracket. Copy out exactly the regions holding such
    // ranks (merged where adjacent) in one more pass.
    const detail::ScanPlan again = detail::plan_missing_regions(plan, below, ranks, known);
    parts = detail::scan(again, data, n, t);
    below = detail::total_below(parts, again.cuts.size());
    detail::resolve_ranks(again, below, parts, n, ranks, &values, &known, t);
    if (std::find(known.begin(), known.end(), 0) != known.end()) {  // never seen; be exact anyway
      std::vector<double> copy(data, data + n);
      detail::select_ranks(copy.data(), 0, n, ranks.data(), ranks.size());
      for (std::size_t k = 0; k < ranks.size(); ++k) values[k] = copy[ranks[k]];
    }
  }
  const double lo = out.min;
  const double hi = out.max;
  detail::fill_percentiles(&out, percentiles, [&](std::size_t r) {
    if (r == 0) return lo;
    if (r == n - 1) return hi;
    return values[static_cast<std::size_t>(std::lower_bound(ranks.begin(), ranks.end(), r) -
                                           ranks.begin())];
  });
  return out;
}

}  // namespace pyinfer
