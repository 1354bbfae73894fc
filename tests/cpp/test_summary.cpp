// pyinfer::summarize against a brute-force sort, on random and adversarial data, around the
// small-n threshold and at large n. A plain main(): prints each failure, returns 1 if any.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "pyinfer/summary.hpp"
// The internals these tests reach (the sampler's indices, the scan's switch), which a separately
// compiled build (test_summary_separate: summarize() from the library) leaves out of summary.hpp.
#include "pyinfer/detail/select.hpp"

namespace {

int failures = 0;
int checks = 0;

void fail(const std::string& what) {
  ++failures;
  std::printf("FAIL %s\n", what.c_str());
}

bool close(double got, double want, double rel) {
  return std::fabs(got - want) <= rel * std::fabs(want) + 1e-300;
}

const std::vector<double> kRanks{0.0, 0.1, 1.0, 33.3, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0};

void check(const std::string& name, const std::vector<double>& x,
           const std::vector<double>& ranks = kRanks, unsigned threads = 0) {
  ++checks;
  const std::size_t n = x.size();
  std::vector<double> sorted(x);
  std::sort(sorted.begin(), sorted.end());
  long double sum = 0.0L;
  for (double v : x) sum += v;
  const long double mean = sum / static_cast<long double>(n);
  long double dev = 0.0L, dev2 = 0.0L;
  for (double v : x) {
    dev += static_cast<long double>(v) - mean;
    dev2 += (static_cast<long double>(v) - mean) * (static_cast<long double>(v) - mean);
  }
  const double var = static_cast<double>((dev2 - dev * dev / n) / static_cast<long double>(n));
  const double want_std = std::sqrt(std::max(var, 0.0));

  const pyinfer::Summary s = pyinfer::summarize(x.data(), n, ranks, 0, threads);
  const std::string tag = name + " n=" + std::to_string(n) + " threads=" + std::to_string(threads) +
                          (pyinfer::detail::force_portable_scan() ? " portable" : "");
  if (s.count != n) fail(tag + ": count");
  if (s.min != sorted.front()) fail(tag + ": min");
  if (s.max != sorted.back()) fail(tag + ": max");
  const double scale = std::max(std::fabs(sorted.front()), std::fabs(sorted.back()));
  if (!close(s.mean, static_cast<double>(mean), 1e-12) &&
      std::fabs(s.mean - static_cast<double>(mean)) > 1e-15 * scale) {
    fail(tag + ": mean " + std::to_string(s.mean));
  }
  if (!close(s.std, want_std, 1e-9) && std::fabs(s.std - want_std) > 1e-15 * scale) {
    fail(tag + ": std " + std::to_string(s.std) + " want " + std::to_string(want_std));
  }
  if (s.percentile_values.size() != ranks.size()) fail(tag + ": number of percentiles");
  for (std::size_t k = 0; k < ranks.size() && k < s.percentile_values.size(); ++k) {
    const double want = pyinfer::percentile_of_sorted(sorted.data(), n, ranks[k]);
    if (!(s.percentile_values[k] == want)) {
      char text[160];
      std::snprintf(text, sizeof(text), ": p%g = %.17g, want %.17g", ranks[k],
                    s.percentile_values[k], want);
      fail(tag + text);
    }
  }
}

void expect_throw(const std::string& name, const std::function<void()>& f,
                  const std::string& fragment) {
  ++checks;
  try {
    f();
    fail(name + ": no exception");
  } catch (const pyinfer::InvalidArgument& e) {
    if (std::string(e.what()).find(fragment) == std::string::npos) {
      fail(name + ": message '" + e.what() + "' lacks '" + fragment + "'");
    }
  }
}

}  // namespace

// Summary::percentile(rank): the value at a computed rank, and a clear error for any other.
void test_percentile_by_rank() {
  const std::vector<double> x{4.0, 1.0, 3.0, 2.0, 5.0};
  const pyinfer::Summary s = pyinfer::summarize(x.data(), x.size(), {50.0, 99.9, 0.0});
  ++checks;
  if (s.percentile(50.0) != 3.0 || s.percentile(0.0) != 1.0 ||
      s.percentile(99.9) != s.percentile_values[1]) {
    fail("percentile(rank) returns the value at that rank");
  }
  ++checks;
  try {
    (void)s.percentile(99.0);
    fail("percentile(99) of a summary without it throws");
  } catch (const pyinfer::InvalidArgument& e) {
    const std::string want = "percentile 99 was not computed; this summary has 50, 99.9, 0";
    if (e.what() != want) fail(std::string("percentile(99) message: ") + e.what());
  }
}

int main() {
  test_percentile_by_rank();
  std::mt19937_64 rng(42);
  const std::vector<std::size_t> sizes{1,     2,     3,     17,    1000,  32767,  32768,
                                       32769, 40000, 65535, 65536, 65537, 100003, 1 << 20};
  // Every case twice: with the build dispatch picks for this CPU (AVX2 where it runs), then with
  // the portable build forced, so that both kernels stay covered on one machine.
  for (const bool portable : {false, true}) {
    pyinfer::detail::force_portable_scan() = portable;
    for (std::size_t n : sizes) {
      std::normal_distribution<double> normal(3.0, 2.0);
      std::lognormal_distribution<double> lognormal(std::log(5e6), 0.4);
      std::uniform_int_distribution<int> small(0, 9);
      std::vector<double> x(n);
      for (double& v : x) v = normal(rng);
      check("normal", x);
      check("normal", x, kRanks, 1);
      check("normal", x, kRanks, 3);
      for (double& v : x) v = lognormal(rng);
      check("lognormal", x);
      std::sort(x.begin(), x.end());
      check("sorted", x);
      std::reverse(x.begin(), x.end());
      check("reverse sorted", x);
      std::fill(x.begin(), x.end(), -2.5);
      check("constant", x);
      x[n / 2] = 1e150;
      check("one huge outlier", x);
      for (double& v : x) v = small(rng) < 5 ? -1.0 : 3.0;
      check("two-valued", x);
      for (double& v : x) v = small(rng);
      check("small integers", x);
      for (double& v : x) v = small(rng) == 0 ? 5e-324 * small(rng) : 1e12 * normal(rng);
      check("denormals and large", x);
      // A cluster of 100 equal values right at the rank of p99, shuffled in.
      for (double& v : x) v = normal(rng);
      std::sort(x.begin(), x.end());
      const std::size_t at = static_cast<std::size_t>(0.99 * static_cast<double>(n - 1));
      for (std::size_t i = at > 50 ? at - 50 : 0; i < std::min(n, at + 50); ++i) x[i] = x[at];
      std::shuffle(x.begin(), x.end(), rng);
      check("spike at p99", x);
      // Many ranks at once (the copy-everything path for large n).
      std::vector<double> many;
      for (int p = 0; p <= 100; ++p) many.push_back(p);
      check("many ranks", x, many);
      // Data built against the fixed seed: every sampled index holds 0, the rest distinct values,
      // so every bracket misses and the exact fallback pass has to find the ranks.
      if (n >= pyinfer::detail::kSortBelow) {
        for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<double>(i % 1000003) + 1.0;
        for (std::size_t i : pyinfer::detail::sample_indices(n)) x[i] = 0.0;
        check("adversarial sample", x);
        for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<double>(n - i);
        for (std::size_t i : pyinfer::detail::sample_indices(n))
          x[i] = 1e9 + static_cast<double>(i);
        check("adversarial sample 2", x, {0.0, 0.1, 50.0, 99.0, 99.99});
      }
    }
  }
  pyinfer::detail::force_portable_scan() = false;
  {  // Large n, default ranks, 2 threads; std a millionth of the mean.
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> x(3000000);
    for (double& v : x) v = 1e6 + normal(rng);
    check("1e6 + randn", x, {50.0, 90.0, 95.0, 99.0, 99.9}, 2);
  }
  std::vector<double> x{1.0, 2.0, NAN, 4.0};
  expect_throw("nan", [&] { pyinfer::summarize(x.data(), x.size(), {50.0}); }, "sample 2");
  x.assign(100000, 1.0);
  x[70001] = INFINITY;
  x[90001] = NAN;
  expect_throw("inf", [&] { pyinfer::summarize(x.data(), x.size(), {50.0}); }, "sample 70001");
  expect_throw("empty", [&] { pyinfer::summarize(x.data(), 0, {50.0}); }, "zero samples");
  expect_throw("rank", [&] { pyinfer::summarize(x.data(), 3, {150.0}); }, "outside [0, 100]");
  expect_throw("ddof", [&] { pyinfer::summarize(x.data(), 1, {50.0}, 1); }, "ddof");

  std::printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
