// The one pass of summarize() over the data: shifted moments, min, max, finiteness, counts below
// a few cuts, and copies of the values inside the brackets. SIMD kernels (GCC/clang vector
// extensions; SSE2 and AVX2 builds on x86-64, picked at run time) and the threads that run them.
// Internal to pyinfer: no stability promise.
#pragma once

#include "pyinfer/detail/config.hpp"

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
#include <system_error>
#include <thread>
#include <vector>

namespace pyinfer {
namespace detail {

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
  return __builtin_ia32_movmskpd(reinterpret_cast<Vec<2>::D>(v)) != 0;
}
#if !defined(__clang__)
// Clang gives this specialization the primary template's always_inline, and then refuses to
// inline an AVX2 function into the generic cut_block; there the generic loop serves, which it
// compiles to a vector OR and one test inside the AVX2 build.
template <>
__attribute__((target("avx2"))) inline bool any_sign<4>(const Vec<4>::U& v) noexcept {
  return __builtin_ia32_movmskpd256(reinterpret_cast<Vec<4>::D>(v)) != 0;
}
#endif
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
  constexpr std::size_t kArray = M > 0 ? static_cast<std::size_t>(M) : 1;  // no empty arrays
  std::int64_t count[kArray] = {};
  std::size_t i = 0;
#if PYINFER_DETAIL_VECTORS
  using D = typename Vec<W>::D;
  using I = typename Vec<W>::I;
  using U = typename Vec<W>::U;
  constexpr std::size_t kStep = 2 * W;
  D t[kArray];
  I c[kArray];
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
      const I m0 = __builtin_convertvector(v0 < t[j], I);  // -1 where below the cut, else 0
      const I m1 = __builtin_convertvector(v1 < t[j], I);
      c[j] += m0 + m1;
      code0 += m0;
      code1 += m1;
    }
    const U flag0 = bits << __builtin_convertvector(code0 + M, U);  // sign bit: copy it out
    const U flag1 = bits << __builtin_convertvector(code1 + M, U);
    if (any_sign<W>(flag0 | flag1)) {  // rare: copy out, branch-free
      for (int l = 0; l < W; ++l) {
        values[kept] = v0[l];
        regions[kept] = static_cast<std::uint8_t>(region0 + static_cast<std::size_t>(M + code0[l]));
        kept += static_cast<std::size_t>(flag0[l] >> 63);
      }
      for (int l = 0; l < W; ++l) {
        values[kept] = v1[l];
        regions[kept] = static_cast<std::uint8_t>(region0 + static_cast<std::size_t>(M + code1[l]));
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
    PYINFER_TRY { scan_range(plan, data, bounds[t], bounds[t + 1], &parts[t]); }
    PYINFER_CATCH(...) { parts[t].error = std::current_exception(); }
  };
  std::vector<std::thread> workers;
  std::vector<std::size_t> here;  // parts no thread could be started for
  workers.reserve(parts_n - 1);
  for (std::size_t t = 1; t < parts_n; ++t) {
    PYINFER_TRY { workers.emplace_back(run, t); }
    PYINFER_CATCH(const std::system_error&) { here.push_back(t); }
  }
  run(0);
  for (std::size_t t : here) run(t);
  for (std::thread& w : workers) w.join();
  for (const ScanPart& p : parts) {
    if (p.error) std::rethrow_exception(p.error);
  }
  return parts;
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

}  // namespace detail
}  // namespace pyinfer
