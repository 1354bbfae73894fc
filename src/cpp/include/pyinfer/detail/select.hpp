// How summarize() finds the ranks it needs: a fixed-seed sample places brackets around them, the
// scan (summary_scan.hpp) counts and copies, and selection in the few copies pins each rank down.
// Internal to pyinfer: no stability promise.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <system_error>
#include <thread>
#include <vector>

#include "pyinfer/detail/summary_scan.hpp"

namespace pyinfer {
namespace detail {

/// The positions summarize() samples for n values: min(kSampleSize, n / 2) indices from a
/// splitmix64 sequence seeded by n (fixed, so results and timings are reproducible; tests build
/// adversarial data against exactly these positions).
inline std::vector<std::size_t> sample_indices(std::size_t n) {
  std::vector<std::size_t> at(std::min(kSampleSize, n / 2));
  std::uint64_t state = 0x9E3779B97F4A7C15ULL ^ n;
  for (std::size_t& index : at) {
    state += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    index = static_cast<std::size_t>((z ^ (z >> 31)) % n);
  }
  return at;
}

/// Rearranges v[lo .. hi) so that v[ranks[k]] is the value a full sort of v[lo .. hi) would put
/// there, for the ascending, distinct indices ranks[0 .. count), all in [lo, hi).
inline void select_ranks(double* v, std::size_t lo, std::size_t hi, const std::size_t* ranks,
                         std::size_t count) {
  while (count > 0) {
    const std::size_t mid = count / 2;
    const std::size_t r = ranks[mid];
    if (r == lo) {  // the smallest, or (below) the largest: one cheap scan
      std::iter_swap(v + r, std::min_element(v + lo, v + hi));
    } else if (r + 1 == hi) {
      std::iter_swap(v + r, std::max_element(v + lo, v + hi));
    } else {
      std::nth_element(v + lo, v + r, v + hi);
    }
    select_ranks(v, lo, r, ranks, mid);
    lo = r + 1;
    ranks += mid + 1;
    count -= mid + 1;
  }
}

/// A value interval [lo, hi] of the data that should hold some wanted ranks; lo may be -inf and
/// hi +inf. `*_repeated`: that end occurs more than once in the sample.
struct Bracket {
  double lo, hi;
  bool lo_repeated, hi_repeated;
};

/// Sets plan->take (one flag per region of plan->cuts) for the regions starting at the values
/// `taken_from` (each -inf or one of the cuts).
inline void mark_taken(const std::vector<double>& taken_from, ScanPlan* plan) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double>& cuts = plan->cuts;
  plan->take.assign(cuts.size() + 1, 0);
  for (double from : taken_from) {
    plan->take[from == -inf ? 0
                            : static_cast<std::size_t>(
                                  std::lower_bound(cuts.begin(), cuts.end(), from) - cuts.begin()) +
                                  1] = 1;
  }
}

/// Cuts and taken regions for `brackets` (ascending by lo), merging those that overlap or touch.
inline void plan_brackets(const std::vector<Bracket>& brackets, ScanPlan* plan) {
  std::vector<Bracket> merged;
  for (const Bracket& b : brackets) {
    if (!merged.empty() && b.lo <= next_up(merged.back().hi)) {
      Bracket& m = merged.back();
      if (b.hi > m.hi) {
        m.hi = b.hi;
        m.hi_repeated = b.hi_repeated;
      } else if (b.hi == m.hi) {
        m.hi_repeated = m.hi_repeated || b.hi_repeated;
      }
      if (b.lo == m.lo) m.lo_repeated = m.lo_repeated || b.lo_repeated;
    } else {
      merged.push_back(b);
    }
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double>& cuts = plan->cuts;
  std::vector<double> taken_from;  // each taken region starts at one of these (or -inf)
  for (const Bracket& b : merged) {
    if (b.lo == b.hi) {  // one repeated value: count it, copy nothing
      cuts.push_back(b.lo);
      cuts.push_back(next_up(b.lo));
      continue;
    }
    double from = -inf;
    double to = inf;
    if (b.lo > -inf) {
      cuts.push_back(b.lo);
      from = b.lo;
      if (b.lo_repeated) {  // [lo, next_up(lo)): counted, not copied
        from = next_up(b.lo);
        cuts.push_back(from);
      }
    }
    if (b.hi < inf) {
      to = next_up(b.hi);
      cuts.push_back(to);
      if (b.hi_repeated) {  // [hi, next_up(hi)): counted, not copied
        to = b.hi;
        cuts.push_back(to);
      }
    }
    if (from < to) taken_from.push_back(from);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  mark_taken(taken_from, plan);
}

/// Region of the r-th smallest value, given `below` (per cut, the values below it).
inline std::size_t region_of(const std::vector<std::int64_t>& below, std::size_t r) {
  return static_cast<std::size_t>(
      std::upper_bound(below.begin(), below.end(), static_cast<std::int64_t>(r)) - below.begin());
}

/// Fills values[k] (and sets known[k]) for every rank ranks[k] (ascending) not yet known that
/// the scan pinned down: in a single-value region, or in a taken region. Selects on up to two
/// threads when `threads` > 1.
inline void resolve_ranks(const ScanPlan& plan, const std::vector<std::int64_t>& below,
                          const std::vector<ScanPart>& parts, std::size_t n,
                          const std::vector<std::size_t>& ranks, std::vector<double>* values,
                          std::vector<std::uint8_t>* known, unsigned threads) {
  const std::size_t m = plan.cuts.size();
  auto start = [&](std::size_t g) {
    return g == 0 ? std::size_t{0} : g > m ? n : static_cast<std::size_t>(below[g - 1]);
  };
  std::vector<std::uint8_t> wanted(m + 1, 0);
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    if ((*known)[k]) continue;
    const std::size_t g = region_of(below, ranks[k]);
    if (g > 0 && g < m && plan.cuts[g] == next_up(plan.cuts[g - 1])) {
      (*values)[k] = plan.cuts[g - 1];  // a single-value region
      (*known)[k] = 1;
    } else if (plan.take[g]) {
      wanted[g] = 1;
    }
  }
  // Sort the copies of the wanted regions into one array, region after region.
  std::vector<std::size_t> offset(m + 2, 0);  // by region: where its copies go
  std::size_t total = 0;
  for (std::size_t g = 0; g <= m; ++g) {
    offset[g] = total;
    if (wanted[g]) total += start(g + 1) - start(g);
  }
  offset[m + 1] = total;
  std::vector<std::size_t> fill(offset.begin(), offset.end() - 1);
  std::vector<double> copies(total);
  for (const ScanPart& p : parts) {
    for (std::size_t i = 0; i < p.kept; ++i) {
      const std::size_t g = p.regions[i];
      if (wanted[g] && fill[g] < offset[g] + (start(g + 1) - start(g)))
        copies[fill[g]++] = p.values[i];
    }
  }
  // Select in each complete region (always all of them, short of a bug); with two threads, the
  // regions are shared out between them by size (the copies of a region are disjoint).
  std::vector<std::size_t> complete;
  for (std::size_t g = 0; g <= m; ++g) {
    if (wanted[g] && fill[g] == offset[g] + (start(g + 1) - start(g))) complete.push_back(g);
  }
  auto select_in = [&](std::size_t g) {
    const std::size_t first = start(g);
    std::vector<std::size_t> local;  // indices into copies
    for (std::size_t r : ranks) {
      if (r >= first && r < start(g + 1)) local.push_back(offset[g] + (r - first));
    }
    select_ranks(copies.data(), offset[g], fill[g], local.data(), local.size());
  };
  std::vector<std::uint8_t> elsewhere(m + 1, 0);  // regions the other thread selects in
  std::size_t here_size = 0, there_size = 0;
  if (threads > 1 && complete.size() > 1) {
    std::vector<std::size_t> by_size(complete);
    std::sort(by_size.begin(), by_size.end(), [&](std::size_t a, std::size_t b) {
      return fill[a] - offset[a] > fill[b] - offset[b];
    });
    for (std::size_t g : by_size) {
      const std::size_t size = fill[g] - offset[g];
      if (there_size < here_size) {
        elsewhere[g] = 1;
        there_size += size;
      } else {
        here_size += size;
      }
    }
  }
  std::exception_ptr error;
  std::thread other;
  if (there_size >= kValuesPerThread) {
    PYINFER_TRY {
      other = std::thread([&] {
        PYINFER_TRY {
          for (std::size_t g : complete) {
            if (elsewhere[g]) select_in(g);
          }
        }
        PYINFER_CATCH(...) { error = std::current_exception(); }
      });
    }
    PYINFER_CATCH(const std::system_error&) {}
  }
  if (!other.joinable()) std::fill(elsewhere.begin(), elsewhere.end(), 0);
  for (std::size_t g : complete) {
    if (!elsewhere[g]) select_in(g);
  }
  if (other.joinable()) other.join();
  if (error) std::rethrow_exception(error);
  for (std::size_t g : complete) {
    const std::size_t first = start(g);
    for (std::size_t k = 0; k < ranks.size(); ++k) {
      if (ranks[k] >= first && ranks[k] < start(g + 1)) {
        (*values)[k] = copies[offset[g] + (ranks[k] - first)];
        (*known)[k] = 1;
      }
    }
  }
}

/// The plan of the first scan: the sample median as the shift, and a bracket around each of
/// `ranks` (at most kMaxBracketedRanks; else one region, all copied). Rearranges `sample`.
inline ScanPlan plan_first_scan(std::vector<double>& sample, const std::vector<std::size_t>& ranks,
                                std::size_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::size_t s = sample.size();
  const bool bracketed = ranks.size() <= kMaxBracketedRanks;
  struct Placed {
    double lo_pos, hi_pos;
  };
  std::vector<Placed> placed;
  std::vector<std::size_t> positions{s / 2};  // sample order statistics needed
  const double sd = static_cast<double>(s);
  double fraction = 0.0;
  if (bracketed) {
    for (std::size_t r : ranks) {
      const double f = (static_cast<double>(r) + 0.5) / static_cast<double>(n);
      const double center = f * sd;
      const double spread = kBracketSigmas * std::sqrt(sd * f * (1.0 - f));
      const Placed p{std::floor(center - spread) - 1.0, std::ceil(center + spread) + 1.0};
      placed.push_back(p);
      fraction += (std::min(p.hi_pos, sd) - std::max(p.lo_pos, 0.0)) / sd;
      for (double pos : {p.lo_pos, p.hi_pos}) {
        if (pos < 0.0 || pos >= sd) continue;
        const auto k = static_cast<std::size_t>(pos);
        for (std::size_t q = k > 0 ? k - 1 : k; q <= k + 1 && q < s; ++q) positions.push_back(q);
      }
    }
  }
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  select_ranks(sample.data(), 0, s, positions.data(), positions.size());

  ScanPlan plan;
  plan.shift = sample[s / 2];
  if (bracketed) {
    std::vector<Bracket> brackets;
    auto repeated = [&](std::size_t k) {
      return (k > 0 && sample[k - 1] == sample[k]) || (k + 1 < s && sample[k + 1] == sample[k]);
    };
    for (const Placed& p : placed) {
      Bracket b{-inf, inf, false, false};
      if (p.lo_pos >= 0.0) {
        const auto k = static_cast<std::size_t>(p.lo_pos);
        b.lo = sample[k];
        b.lo_repeated = repeated(k);
      }
      if (p.hi_pos < sd) {
        const auto k = static_cast<std::size_t>(p.hi_pos);
        b.hi = sample[k];
        b.hi_repeated = repeated(k);
      }
      brackets.push_back(b);
    }
    plan_brackets(brackets, &plan);
    plan.expected_take_fraction = std::min(fraction, 1.0);
  } else {  // many ranks: copy everything out (one region, no cuts) and select from the copy
    plan.take.assign(1, 1);
    plan.expected_take_fraction = 1.0;
  }
  return plan;
}

/// The plan of a second scan that copies out exactly the regions of `plan` holding the ranks
/// ranks[k] not yet `known` (merged where adjacent); `below` is the first scan's counts.
inline ScanPlan plan_missing_regions(const ScanPlan& plan, const std::vector<std::int64_t>& below,
                                     const std::vector<std::size_t>& ranks,
                                     const std::vector<std::uint8_t>& known) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::size_t m = plan.cuts.size();
  std::vector<std::uint8_t> missing(m + 1, 0);
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    if (!known[k]) missing[region_of(below, ranks[k])] = 1;
  }
  ScanPlan again;
  again.moments = false;
  std::vector<double> taken_from;
  for (std::size_t g = 0; g <= m; ++g) {
    if (!missing[g] || (g > 0 && missing[g - 1])) continue;  // start of a run of regions
    std::size_t e = g;
    while (e + 1 <= m && missing[e + 1]) ++e;
    const double from = g == 0 ? -inf : plan.cuts[g - 1];
    if (g > 0) again.cuts.push_back(from);
    if (e < m) again.cuts.push_back(plan.cuts[e]);
    taken_from.push_back(from);
  }
  mark_taken(taken_from, &again);
  return again;
}

/// Per-cut counts of all parts together.
inline std::vector<std::int64_t> total_below(const std::vector<ScanPart>& parts, std::size_t m) {
  std::vector<std::int64_t> below(m, 0);
  for (const ScanPart& p : parts) {
    for (std::size_t j = 0; j < m; ++j) below[j] += p.below[j];
  }
  return below;
}

}  // namespace detail
}  // namespace pyinfer
