// C++ tests of pyinfer/histogram.hpp.
#include <pyinfer/histogram.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.hpp"

namespace {

void test_buckets_tile_the_range(int digits) {
  pyinfer::LogLinearHistogram h(digits, std::uint64_t{1} << 44);
  std::uint64_t expected_lower = 0;
  for (std::size_t i = 0; i < h.bucket_count(); ++i) {
    CHECK(h.bucket_lower(i) == expected_lower);  // contiguous, no gap, no overlap
    CHECK(h.index_of(h.bucket_lower(i)) == i);
    CHECK(h.index_of(h.bucket_lower(i) + h.bucket_width(i) - 1) == i);
    // Half a bucket is within the relative error of the bucket's smallest value.
    if (h.bucket_lower(i) > 0) {
      CHECK(static_cast<double>(h.bucket_width(i) - 1) / 2.0 <=
            h.relative_error() * static_cast<double>(h.bucket_lower(i)));
    }
    expected_lower += h.bucket_width(i);
  }
  CHECK(h.relative_error() <= std::pow(10.0, -digits));
}

void test_percentiles_within_bound() {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> log_uniform(0.0, std::log(3.6e12));
  pyinfer::LogLinearHistogram h(3);
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<std::uint64_t>(std::exp(log_uniform(rng)));
    h.record(v);
    values.push_back(static_cast<double>(v));
  }
  std::sort(values.begin(), values.end());
  const std::vector<double> ranks{0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0};
  const std::vector<double> estimates = h.percentiles(ranks);
  for (std::size_t j = 0; j < ranks.size(); ++j) {
    const double exact = pyinfer::percentile_of_sorted(values.data(), values.size(), ranks[j]);
    CHECK(std::fabs(estimates[j] - exact) <= std::max(h.relative_error() * exact, 1.0));
  }
}

void test_merge_and_errors() {
  pyinfer::LogLinearHistogram a(2, 1000000), b(2, 1000000), both(2, 1000000);
  for (std::uint64_t v = 1; v < 5000; v += 3) {
    a.record(v);
    both.record(v);
  }
  for (std::uint64_t v = 100; v < 900000; v += 777) {
    b.record(v, 2);
    both.record(v, 2);
  }
  a.merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.min() == both.min() && a.max() == both.max());
  for (std::size_t i = 0; i < a.bucket_count(); ++i) {
    CHECK(a.bucket_count_at(i) == both.bucket_count_at(i));
  }
  pyinfer::LogLinearHistogram other(3, 1000000);
  CHECK_THROWS(a.merge(other), pyinfer::InvalidArgument);
  CHECK_THROWS(a.record(1000001), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::LogLinearHistogram(0), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::LogLinearHistogram(6), pyinfer::InvalidArgument);
  CHECK_THROWS(pyinfer::LogLinearHistogram(3, 1), pyinfer::InvalidArgument);
  pyinfer::LogLinearHistogram empty;
  CHECK_THROWS(empty.percentiles({50.0}), pyinfer::InvalidArgument);
  CHECK_THROWS(a.percentiles({101.0}), pyinfer::InvalidArgument);
  a.clear();
  CHECK(a.count() == 0);
}

}  // namespace

int main() {
  for (int digits = 1; digits <= 4; ++digits) test_buckets_tile_the_range(digits);
  test_percentiles_within_bound();
  test_merge_and_errors();
  return TEST_MAIN_RESULT();
}
