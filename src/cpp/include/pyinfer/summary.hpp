// One-call statistical summary of a set of samples: count, mean, std, min, max, percentiles.
//
// Percentile definition (stated once, used everywhere in pyinfer): linear interpolation between
// the two closest ranks, exactly numpy's `np.percentile(x, p, method="linear")` (Hyndman & Fan
// type 7): with the samples sorted as x[0] <= ... <= x[n-1], h = (p / 100) * (n - 1),
// i = floor(h), g = h - i, and P(p) = x[i] + g * (x[i+1] - x[i]) (numpy's lerp formulation).
#pragma once

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
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

namespace detail {

// ---- summarize(): the exact fast path ----------------------------------------------------------
//
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

/// Sample counts below which summarize() simply copies and sorts.
constexpr std::size_t kSortBelow = 32768;
/// Sample counts from which summarize() uses more than one thread when free to choose.
constexpr std::size_t kThreadsFrom = std::size_t{1} << 16;
/// Values per thread below which another thread does not pay off.
constexpr std::size_t kValuesPerThread = std::size_t{1} << 15;
/// Values per block of the scan: the block stays in the L1 cache while it is looked at.
constexpr std::size_t kScanBlock = 2048;
/// Size of the random sample that places the brackets.
constexpr std::size_t kSampleSize = 65536;
/// Half-width of a bracket, in binomial standard deviations of the sample rank.
constexpr double kBracketSigmas = 3.5;
/// Distinct ranks beyond which the scan simply copies everything and selects from the copy.
constexpr std::size_t kMaxBracketedRanks = 32;

/// Neumaier-compensated running sum.
struct CompensatedSum {
  double sum = 0.0;
  double compensation = 0.0;

  void add(double v) noexcept {
    const double t = sum + v;
    if (std::fabs(sum) >= std::fabs(v)) {
      compensation += (sum - t) + v;
    } else {
      compensation += (v - t) + sum;
    }
    sum = t;
  }
  double value() const noexcept { return std::isfinite(sum) ? sum + compensation : sum; }
};

/// The smallest double greater than the finite `v` (+inf for the largest double).
inline double next_up(double v) noexcept {
  return std::nextafter(v, std::numeric_limits<double>::infinity());
}

/// What one scan looks for (shared, read-only, by all its threads).
///
/// Region g (0 .. cuts.size()) holds the values in [cuts[g - 1], cuts[g]), with -inf and +inf at
/// the ends. The scan counts the values below each cut and copies out the values of the regions
/// marked in `take`. Two taken regions are never adjacent.
struct ScanPlan {
  bool moments = true;       ///< add up the shifted moments, min and max, and check finiteness
  double shift = 0.0;        ///< K of sum(x - K) and sum((x - K)^2)
  std::vector<double> cuts;  ///< ascending, distinct, finite or +inf
  std::vector<std::uint8_t> take;       ///< per region: 1 to copy its values out
  double expected_take_fraction = 0.0;  ///< of the values, to size the buffers
};

/// What one thread found over its part of the data.
struct ScanPart {
  CompensatedSum s1;  ///< sum of (x - shift)
  CompensatedSum s2;  ///< sum of (x - shift)^2
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  std::vector<std::int64_t> below;    ///< per cut: how many values are below it
  std::vector<double> values;         ///< copied-out values, [0, kept)
  std::vector<std::uint8_t> regions;  ///< their regions
  std::size_t kept = 0;
  std::size_t first_non_finite = static_cast<std::size_t>(-1);
  std::exception_ptr error;
};

/// Cuts one kernel call compares against (its counters stay in registers).
constexpr std::size_t kMaxCutsPerKernel = 16;

// ---- the kernels ------------------------------------------------------------------------------
// With GCC and clang, the kernels use vector extensions, and on x86-64 they are compiled twice,
// for SSE2 (any x86-64) and for AVX2, picked at run time (force_portable_scan() forces the SSE2
// build, for tests). The rare "copy something out of these 2W values?" test is one movemask on
// x86 (any_sign). Other compilers get plain loops.
#if defined(__GNUC__) && !defined(PYINFER_NO_SIMD)
#define PYINFER_DETAIL_VECTORS 1
#define PYINFER_DETAIL_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define PYINFER_DETAIL_VECTORS 0
#define PYINFER_DETAIL_ALWAYS_INLINE inline
#endif
#if PYINFER_DETAIL_VECTORS && defined(__x86_64__)
#define PYINFER_DETAIL_X86_DISPATCH 1
#else
#define PYINFER_DETAIL_X86_DISPATCH 0
#endif
#if PYINFER_DETAIL_X86_DISPATCH
}  // namespace detail
}  // namespace pyinfer
#include <immintrin.h>
namespace pyinfer {
namespace detail {
#endif

/// Block sums of one block: sum(x - shift), sum((x - shift)^2), min, max.
struct BlockMoments {
  double s1, s2, min, max;
};

#if PYINFER_DETAIL_VECTORS
/// W doubles, and W 64-bit integers, in one vector.
template <int W>
struct Vec {
  typedef double D __attribute__((vector_size(8 * W)));
  typedef std::int64_t I __attribute__((vector_size(8 * W)));
  typedef std::uint64_t U __attribute__((vector_size(8 * W)));
};

/// True when the sign bit of some lane of `v` is set (movemask where there is one).
template <int W>
PYINFER_DETAIL_ALWAYS_INLINE bool any_sign(const typename Vec<W>::U& v) noexcept {
  std::uint64_t all = 0;
  for (int l = 0; l < W; ++l) all |= v[l];
  return (all >> 63) != 0;
}
#if PYINFER_DETAIL_X86_DISPATCH
template <>
PYINFER_DETAIL_ALWAYS_INLINE bool any_sign<2>(const Vec<2>::U& v) noexcept {
  return _mm_movemask_pd(reinterpret_cast<__m128d>(v)) != 0;
}
template <>
__attribute__((target("avx2"))) inline bool any_sign<4>(const Vec<4>::U& v) noexcept {
  return _mm256_movemask_pd(reinterpret_cast<__m256d>(v)) != 0;
}
#endif
#endif

/// Moments of `x[0 .. len)`, len >= 1, in independent lanes (blocked summation keeps the
/// rounding error small).
template <int W>
PYINFER_DETAIL_ALWAYS_INLINE BlockMoments moments_block(const double* x, std::size_t len,
                                                        double shift) noexcept {
  std::size_t i = 0;
  double r1 = 0.0, r2 = 0.0, lo = x[0], hi = x[0];
#if PYINFER_DETAIL_VECTORS
  using D = typename Vec<W>::D;
  constexpr std::size_t kStep = 2 * W;
  if (len >= kStep) {
    const D k = D{} + shift;
    D a1[2] = {}, a2[2] = {}, mn[2], mx[2];
    std::memcpy(&mn[0], x, sizeof(D));
    mn[1] = mx[0] = mx[1] = mn[0];
    for (; i + kStep <= len; i += kStep) {
      for (int u = 0; u < 2; ++u) {
        D v;
        std::memcpy(&v, x + i + u * W, sizeof(D));
        const D d = v - k;
        a1[u] += d;
        a2[u] += d * d;
        mn[u] = v < mn[u] ? v : mn[u];
        mx[u] = v > mx[u] ? v : mx[u];
      }
    }
    const D s1 = a1[0] + a1[1];
    const D s2 = a2[0] + a2[1];
    for (int l = 0; l < W; ++l) {
      r1 += s1[l];
      r2 += s2[l];
      lo = std::min({lo, mn[0][l], mn[1][l]});
      hi = std::max({hi, mx[0][l], mx[1][l]});
    }
  }
#endif
  for (; i < len; ++i) {
    const double d = x[i] - shift;
    r1 += d;
    r2 += d * d;
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  return BlockMoments{r1, r2, lo, hi};
}

/// One block against the M cuts `cuts[0 .. M)` of a plan, M <= 63: adds to below[j] the values
/// < cuts[j], and copies out (into out->values, with region `region0` + local region) each value
/// whose local region g (0 .. M, by these cuts alone) has bit g set in `take_bits`. `out` has room.
template <int W, int M>
PYINFER_DETAIL_ALWAYS_INLINE void cut_block(const double* x, std::size_t len, const double* cuts,
                                            std::uint64_t take_bits, std::size_t region0,
                                            std::int64_t* below, ScanPart* out) noexcept {
  double* values = out->values.data();
  std::uint8_t* regions = out->regions.data();
  std::size_t kept = out->kept;
  std::int64_t count[M > 0 ? M : 1] = {};
  std::size_t i = 0;
#if PYINFER_DETAIL_VECTORS
  using D = typename Vec<W>::D;
  using I = typename Vec<W>::I;
  using U = typename Vec<W>::U;
  constexpr std::size_t kStep = 2 * W;
  D t[M > 0 ? M : 1];
  I c[M > 0 ? M : 1];
  for (int j = 0; j < M; ++j) {
    t[j] = D{} + cuts[j];
    c[j] = I{};
  }
  std::uint64_t reversed = 0;  // bit 63 - g: take region g
  for (int g = 0; g <= M; ++g) reversed |= ((take_bits >> g) & 1) << (63 - g);
  const U bits = U{} + reversed;
  for (; i + kStep <= len; i += kStep) {
    D v0, v1;
    std::memcpy(&v0, x + i, sizeof(D));
    std::memcpy(&v1, x + i + W, sizeof(D));
    I code0 = I{};  // minus the number of cuts above the value
    I code1 = I{};
    for (int j = 0; j < M; ++j) {
      const I m0 = (I)(v0 < t[j]);
      const I m1 = (I)(v1 < t[j]);
      c[j] += m0 + m1;
      code0 += m0;
      code1 += m1;
    }
    const U flag0 = bits << (U)(code0 + M);  // sign bit: copy the value out
    const U flag1 = bits << (U)(code1 + M);
    if (any_sign<W>(flag0 | flag1)) {  // rare: copy out, branch-free
      for (int l = 0; l < W; ++l) {
        values[kept] = v0[l];
        regions[kept] = static_cast<std::uint8_t>(region0 + M + code0[l]);
        kept += static_cast<std::size_t>(flag0[l] >> 63);
      }
      for (int l = 0; l < W; ++l) {
        values[kept] = v1[l];
        regions[kept] = static_cast<std::uint8_t>(region0 + M + code1[l]);
        kept += static_cast<std::size_t>(flag1[l] >> 63);
      }
    }
  }
  for (int j = 0; j < M; ++j) {
    for (int l = 0; l < W; ++l) count[j] -= c[j][l];
  }
#endif
  for (; i < len; ++i) {
    int g = M;
    for (int j = 0; j < M; ++j) {
      const int m = x[i] < cuts[j];
      count[j] += m;
      g -= m;
    }
    values[kept] = x[i];
    regions[kept] = static_cast<std::uint8_t>(region0 + static_cast<std::size_t>(g));
    kept += (take_bits >> g) & 1;
  }
  for (int j = 0; j < M; ++j) below[j] += count[j];
  out->kept = kept;
}

/// cut_block for a run-time M <= kMaxCutsPerKernel.
template <int W>
PYINFER_DETAIL_ALWAYS_INLINE void cut_block_any(std::size_t m, const double* x, std::size_t len,
                                                const double* cuts, std::uint64_t take_bits,
                                                std::size_t region0, std::int64_t* below,
                                                ScanPart* out) noexcept {
  switch (m) {
#define PYINFER_DETAIL_CASE(M)                                     \
  case M:                                                          \
    cut_block<W, M>(x, len, cuts, take_bits, region0, below, out); \
    break;
    PYINFER_DETAIL_CASE(0)
    PYINFER_DETAIL_CASE(1)
    PYINFER_DETAIL_CASE(2)
    PYINFER_DETAIL_CASE(3)
    PYINFER_DETAIL_CASE(4)
    PYINFER_DETAIL_CASE(5)
    PYINFER_DETAIL_CASE(6)
    PYINFER_DETAIL_CASE(7)
    PYINFER_DETAIL_CASE(8)
    PYINFER_DETAIL_CASE(9)
    PYINFER_DETAIL_CASE(10)
    PYINFER_DETAIL_CASE(11)
    PYINFER_DETAIL_CASE(12)
    PYINFER_DETAIL_CASE(13)
    PYINFER_DETAIL_CASE(14)
    PYINFER_DETAIL_CASE(15)
    default:
      cut_block<W, 16>(x, len, cuts, take_bits, region0, below, out);
      break;
#undef PYINFER_DETAIL_CASE
  }
}

/// The plan's cuts split into runs of at most kMaxCutsPerKernel that no taken region straddles:
/// run k is cuts [runs[k], runs[k + 1]).
inline std::vector<std::size_t> cut_runs(const ScanPlan& plan) {
  const std::size_t m = plan.cuts.size();
  std::vector<std::size_t> runs{0};
  while (runs.back() < m) {
    const std::size_t s = runs.back();
    std::size_t e = std::min(m, s + kMaxCutsPerKernel);
    // Ending a run after cut e - 1 splits region e: only where it is not taken (never two
    // taken regions in a row, so one step back suffices).
    if (e < m && plan.take[e] && e - 1 > s) --e;
    runs.push_back(e);
  }
  if (m == 0) runs.push_back(0);
  return runs;
}

/// Scans `data[begin .. end)` by `plan` into `out` (see ScanPart).
template <int W>
PYINFER_DETAIL_ALWAYS_INLINE void scan_range_body(const ScanPlan& plan, const double* data,
                                                  std::size_t begin, std::size_t end,
                                                  ScanPart* out) {
  const std::size_t m = plan.cuts.size();
  out->below.assign(m, 0);
  const std::vector<std::size_t> runs = cut_runs(plan);
  std::vector<std::uint64_t> run_bits;
  bool takes_any = false;
  for (std::size_t k = 0; k + 1 < runs.size(); ++k) {
    const std::size_t s = runs[k];
    const std::size_t e = runs[k + 1];
    std::uint64_t bits = 0;
    for (std::size_t g = 0; g <= e - s; ++g) {  // local region g is global region s + g
      const bool inner = g > 0 && g < e - s;
      const bool first = g == 0 && s == 0;
      const bool last = g == e - s && e == m;
      if ((inner || first || last) && plan.take[s + g]) bits |= std::uint64_t{1} << g;
    }
    takes_any = takes_any || bits != 0;
    run_bits.push_back(bits);
  }
  if (takes_any) {
    const double expected =
        plan.expected_take_fraction * static_cast<double>(end - begin) * 1.25 + 4.0 * kScanBlock;
    const std::size_t reserve =
        std::min(end - begin + kScanBlock, static_cast<std::size_t>(expected));
    out->values.resize(reserve);
    out->regions.resize(reserve);
  } else {
    out->values.resize(kScanBlock);  // the branch-free copy-out writes one slot past the end
    out->regions.resize(kScanBlock);
  }
  for (std::size_t b = begin; b < end; b += kScanBlock) {
    const std::size_t len = std::min(kScanBlock, end - b);
    const double* x = data + b;
    if (plan.moments) {
      const BlockMoments bm = moments_block<W>(x, len, plan.shift);
      if (!(std::isfinite(bm.s1) && std::isfinite(bm.s2))) {
        for (std::size_t i = 0; i < len; ++i) {
          if (!std::isfinite(x[i])) {
            out->first_non_finite = b + i;
            return;
          }
        }
        // Finite values whose squares overflow: the std is inf, as numpy's would be.
      }
      out->s1.add(bm.s1);
      out->s2.add(bm.s2);
      out->min = bm.min < out->min ? bm.min : out->min;
      out->max = bm.max > out->max ? bm.max : out->max;
    }
    if (m == 0 && !takes_any) continue;
    if (out->values.size() < out->kept + len + 1) {
      const std::size_t grown = std::max(2 * out->values.size(), out->kept + len + 1);
      out->values.resize(grown);
      out->regions.resize(grown);
    }
    for (std::size_t k = 0; k + 1 < runs.size(); ++k) {
      const std::size_t s = runs[k];
      cut_block_any<W>(runs[k + 1] - s, x, len, plan.cuts.data() + s, run_bits[k], s,
                       out->below.data() + s, out);
    }
  }
}

/// Portable build of the scan.
inline void scan_range_portable(const ScanPlan& plan, const double* data, std::size_t begin,
                                std::size_t end, ScanPart* out) {
  scan_range_body<2>(plan, data, begin, end, out);
}

#if PYINFER_DETAIL_X86_DISPATCH
/// AVX2 build of the scan.
__attribute__((target("avx2"))) inline void scan_range_avx2(const ScanPlan& plan,
                                                            const double* data, std::size_t begin,
                                                            std::size_t end, ScanPart* out) {
  scan_range_body<4>(plan, data, begin, end, out);
}

/// True when this CPU (and OS) runs AVX2 code.
inline bool cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2") != 0;
  return has;
}
#endif

/// Test hook: while true, scan_range() uses the portable build even where AVX2 runs, so that
/// tests cover both builds on one machine. Not for production use.
inline std::atomic<bool>& force_portable_scan() noexcept {
  static std::atomic<bool> forced{false};
  return forced;
}

/// Scans `data[begin .. end)` with the best build for this CPU.
inline void scan_range(const ScanPlan& plan, const double* data, std::size_t begin, std::size_t end,
                       ScanPart* out) {
#if PYINFER_DETAIL_X86_DISPATCH
  if (cpu_has_avx2() && !force_portable_scan().load(std::memory_order_relaxed)) {
    return scan_range_avx2(plan, data, begin, end, out);
  }
#endif
  scan_range_portable(plan, data, begin, end, out);
}

#undef PYINFER_DETAIL_ALWAYS_INLINE
#undef PYINFER_DETAIL_X86_DISPATCH
#undef PYINFER_DETAIL_VECTORS

/// Scans `data[0 .. n)` on `threads` threads (the calling one included), one part each.
/// Rethrows the first exception a thread hit (std::bad_alloc), after joining them all.
inline std::vector<ScanPart> scan(const ScanPlan& plan, const double* data, std::size_t n,
                                  unsigned threads) {
  const std::size_t blocks = (n + kScanBlock - 1) / kScanBlock;
  const std::size_t parts_n = std::max<std::size_t>(1, std::min<std::size_t>(threads, blocks));
  std::vector<ScanPart> parts(parts_n);
  std::vector<std::size_t> bounds(parts_n + 1);
  for (std::size_t t = 0; t <= parts_n; ++t) {
    bounds[t] = std::min(n, (blocks * t / parts_n) * kScanBlock);
  }
  auto run = [&](std::size_t t) {
    try {
      scan_range(plan, data, bounds[t], bounds[t + 1], &parts[t]);
    } catch (...) {
      parts[t].error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  std::vector<std::size_t> here;  // parts no thread could be started for
  workers.reserve(parts_n - 1);
  for (std::size_t t = 1; t < parts_n; ++t) {
    try {
      workers.emplace_back(run, t);
    } catch (const std::system_error&) {
      here.push_back(t);
    }
  }
  run(0);
  for (std::size_t t : here) run(t);
  for (std::thread& w : workers) w.join();
  for (const ScanPart& p : parts) {
    if (p.error) std::rethrow_exception(p.error);
  }
  return parts;
}

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

/// CPUs this thread may run on (its affinity mask on Linux, so a container or `taskset` limit
/// counts), else std::thread::hardware_concurrency(); at least 1.
inline unsigned usable_cpus() noexcept {
#if defined(__linux__) && defined(CPU_COUNT)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<unsigned>(count);
  }
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

/// The threads summarize() uses for n samples when asked for `requested` (0: choose).
inline unsigned summary_threads(std::size_t n, unsigned requested) noexcept {
  std::size_t t = requested;
  if (t == 0) {
    if (n < kThreadsFrom) return 1;
    t = usable_cpus();
  }
  t = std::min<std::size_t>(t, std::max<std::size_t>(1, n / kValuesPerThread));
  return static_cast<unsigned>(std::min<std::size_t>(t, 256));
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

[[noreturn]] inline void throw_non_finite(std::size_t index, double value) {
  throw InvalidArgument("sample " + std::to_string(index) + " is not finite (" +
                        std::to_string(value) + ")");
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

/// summarize() for small n: copy, sort.
inline Summary summarize_by_sorting(const double* data, std::size_t n,
                                    const std::vector<double>& percentiles, int ddof) {
  check_finite(data, n);
  std::vector<double> sorted(data, data + n);
  std::sort(sorted.begin(), sorted.end());
  Summary s;
  s.count = n;
  const double shift = sorted[n / 2];
  CompensatedSum s1, s2;
  for (std::size_t b = 0; b < n; b += kScanBlock) {
    const BlockMoments m = moments_block<2>(sorted.data() + b, std::min(kScanBlock, n - b), shift);
    s1.add(m.s1);
    s2.add(m.s2);
  }
  finish_moments(&s, shift, s1.value(), s2.value(), ddof);
  s.min = sorted.front();
  s.max = sorted.back();
  fill_percentiles(&s, percentiles, [&](std::size_t r) { return sorted[r]; });
  return s;
}

/// A value interval [lo, hi] of the data that should hold some wanted ranks; lo may be -inf and
/// hi +inf. `*_repeated`: that end occurs more than once in the sample.
struct Bracket {
  double lo, hi;
  bool lo_repeated, hi_repeated;
};

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
  plan->take.assign(cuts.size() + 1, 0);
  for (double from : taken_from) {
    plan->take[from == -inf ? 0
                            : static_cast<std::size_t>(
                                  std::lower_bound(cuts.begin(), cuts.end(), from) - cuts.begin()) +
                                  1] = 1;
  }
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
    try {
      other = std::thread([&] {
        try {
          for (std::size_t g : complete) {
            if (elsewhere[g]) select_in(g);
          }
        } catch (...) {
          error = std::current_exception();
        }
      });
    } catch (const std::system_error&) {
    }
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

/// Per-cut counts of all parts together.
inline std::vector<std::int64_t> total_below(const std::vector<ScanPart>& parts, std::size_t m) {
  std::vector<std::int64_t> below(m, 0);
  for (const ScanPart& p : parts) {
    for (std::size_t j = 0; j < m; ++j) below[j] += p.below[j];
  }
  return below;
}

}  // namespace detail

/// Summarises `data[0 .. n)` without modifying or copying it.
///
/// Exact: the percentiles are exactly numpy's `np.percentile(data, p, method="linear")`; the
/// mean and std come from sums shifted by the median, accurate even when the std is a millionth
/// of the mean. From n >= 32768 it reads the data about once (see detail:: above), on several
/// threads from n >= 65536, in a few milliseconds per ten million samples; extra memory is a few
/// hundred kilobytes plus a few percent of n values. Values are in the samples' unit.
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
inline Summary summarize(const double* data, std::size_t n, const std::vector<double>& percentiles,
                         int ddof = 0, unsigned threads = 0) {
  validate_percentiles(percentiles);
  if (n == 0) throw InvalidArgument("cannot summarize zero samples");
  if (ddof < 0 || static_cast<std::size_t>(ddof) >= n) {
    throw InvalidArgument("ddof must be in [0, count); got ddof=" + std::to_string(ddof) + " for " +
                          std::to_string(n) + " samples");
  }
  if (n < detail::kSortBelow) return detail::summarize_by_sorting(data, n, percentiles, ddof);
  const double inf = std::numeric_limits<double>::infinity();

  // The ranks the percentiles need, besides 0 and n - 1 (the min and the max).
  std::vector<std::size_t> ranks;
  for (double p : percentiles) {
    std::size_t i;
    double g;
    detail::virtual_index(p, n, &i, &g);
    ranks.push_back(i);
    if (i + 1 < n) ranks.push_back(i + 1);
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  ranks.erase(std::remove_if(ranks.begin(), ranks.end(),
                             [n](std::size_t r) { return r == 0 || r == n - 1; }),
              ranks.end());

  // 1. A fixed-seed random sample (splitmix64, with replacement): the shift and the brackets.
  std::vector<double> sample(std::min(detail::kSampleSize, n / 2));
  const std::size_t s = sample.size();
  {
    // The indices first, then the loads, a few ahead: random reads miss the caches.
    const std::vector<std::size_t> at = detail::sample_indices(n);
    constexpr std::size_t kAhead = 32;
    for (std::size_t k = 0; k < s; ++k) {
#if defined(__GNUC__)
      if (k + kAhead < s) __builtin_prefetch(data + at[k + kAhead]);
#endif
      sample[k] = data[at[k]];
    }
  }
  for (double v : sample) {
    if (!std::isfinite(v)) detail::check_finite(data, n);  // throws for the first one
  }
  const bool bracketed = ranks.size() <= detail::kMaxBracketedRanks;
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
      const double spread = detail::kBracketSigmas * std::sqrt(sd * f * (1.0 - f));
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
  detail::select_ranks(sample.data(), 0, s, positions.data(), positions.size());

  detail::ScanPlan plan;
  plan.shift = sample[s / 2];
  if (bracketed) {
    std::vector<detail::Bracket> brackets;
    auto repeated = [&](std::size_t k) {
      return (k > 0 && sample[k - 1] == sample[k]) || (k + 1 < s && sample[k + 1] == sample[k]);
    };
    for (const Placed& p : placed) {
      detail::Bracket b{-inf, inf, false, false};
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
    detail::plan_brackets(brackets, &plan);
    plan.expected_take_fraction = std::min(fraction, 1.0);
  } else {  // many ranks: copy everything out (one region, no cuts) and select from the copy
    plan.take.assign(1, 1);
    plan.expected_take_fraction = 1.0;
  }

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
    const std::size_t m = plan.cuts.size();
    std::vector<std::uint8_t> missing(m + 1, 0);
    for (std::size_t k = 0; k < ranks.size(); ++k) {
      if (!known[k]) missing[detail::region_of(below, ranks[k])] = 1;
    }
    detail::ScanPlan again;
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
    again.take.assign(again.cuts.size() + 1, 0);
    for (double from : taken_from) {
      again.take[from == -inf ? 0
                              : static_cast<std::size_t>(
                                    std::lower_bound(again.cuts.begin(), again.cuts.end(), from) -
                                    again.cuts.begin()) +
                                    1] = 1;
    }
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
