// run_benchmark() and the batch choice it uses: the templates of the harness, over the compiled
// helpers declared here (stopping rule, aggregates). Internal to pyinfer: include
// pyinfer/benchmark.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/benchmark.hpp"

namespace pyinfer {
namespace detail {

// Compiled once into the pyinfer library with PYINFER_SEPARATE_COMPILATION, inline otherwise
// (definitions in benchmark_compiled.hpp).

/// @throws InvalidArgument naming the first inconsistent option
PYINFER_COMPILED void check_benchmark_options(const BenchmarkOptions& o);
/// Half-width of the 95% confidence interval of the median of `values` over the median: the
/// order statistics at ranks n/2 -+ 1.96 sqrt(n)/2 (pyinfer.report.stats.median_ci_relative);
/// infinity below 3 values or for a median <= 0.
PYINFER_COMPILED double median_ci_relative(std::vector<double> values);
/// Samples in a settling window of the warm-up when a sample takes `typical_ns` (the Python
/// warm-up's: about 0.05 s, 5 to 100).
PYINFER_COMPILED std::size_t settle_window(double typical_ns);
/// The median of `values` (0 for none).
PYINFER_COMPILED double median_of(std::vector<double> values);
/// The next chunk's size: StoppingRule.chunk_size (about 0.1 s, never past a boundary).
PYINFER_COMPILED std::size_t chunk_size(const BenchmarkOptions& o, std::size_t count,
                                        double elapsed_s, double typical_ns);
/// The stopping rule after a chunk: true to stop, with `run`'s stability and reason filled in.
PYINFER_COMPILED bool decide(const BenchmarkOptions& o, BenchmarkRun& run, double elapsed_s);
/// The timing method of `result` in words (clock, batch, and why that batch).
PYINFER_COMPILED std::string describe_timing(const BenchmarkResult& result);
/// Fills `result`'s pooled summary and the aggregates of the repetitions' medians.
PYINFER_COMPILED void aggregate_runs(BenchmarkResult& result,
                                     const std::vector<double>& run_medians);

/// Times `samples` samples of `batch` calls each into `out` (nanoseconds per call).
template <class Body>
void timed_samples(Body& body, std::size_t batch, std::size_t samples, std::size_t warmup,
                   double* out) {
  if (batch <= 1) {
    timed_loop([&body] { body(); }, samples, warmup, out);
    return;
  }
  for (std::size_t i = 0; i < warmup; ++i) body();
  timed_loop(
      [&body, batch] {
        for (std::size_t j = 0; j < batch; ++j) body();
      },
      samples, 0, out);
  const double k = static_cast<double>(batch);
  for (std::size_t i = 0; i < samples; ++i) out[i] /= k;
}

/// Warm-up windows until the median settles (BenchmarkOptions::warmup_until_settled); fills
/// `run`'s warm-up fields. `typical_ns`: a sample's expected time.
template <class Body>
void settle(Body& body, std::size_t batch, const BenchmarkOptions& o, double typical_ns,
            BenchmarkRun& run) {
  run.warmup_settled = 0;
  std::vector<double> window;
  double previous = -1.0;
  std::size_t calls = 0;
  const std::int64_t start = now_ns();
  while (calls < o.warmup_max_iterations &&
         static_cast<double>(now_ns() - start) / 1e9 < o.warmup_max_time_s) {
    window.resize(std::min(settle_window(typical_ns), o.warmup_max_iterations - calls));
    timed_samples(body, batch, window.size(), 0, window.data());
    calls += window.size();
    const double median = median_of(window);
    if (previous >= 0.0 && std::abs(median - previous) <= o.settle_tolerance * previous) {
      run.warmup_settled = 1;
      break;
    }
    previous = median;
    typical_ns = median * static_cast<double>(batch);
  }
  run.warmup_samples += calls;
}

/// The smallest power of two of calls whose batch lasts batch_target_ns (the fastest of 5).
template <class Body>
std::size_t choose_batch(Body& body, double target_ns) {
  constexpr std::size_t kMaxBatch = std::size_t{1} << 24;
  std::size_t k = 1;
  double batch_ns[5];
  while (k < kMaxBatch) {
    timed_samples(body, k, 5, 0, batch_ns);
    const double fastest = *std::min_element(batch_ns, batch_ns + 5) * static_cast<double>(k);
    if (fastest >= target_ns) break;
    k *= 2;
  }
  return k;
}

}  // namespace detail

template <class Body>
BenchmarkResult run_benchmark(const std::string& name, Body&& body,
                              const BenchmarkOptions& options) {
  detail::check_benchmark_options(options);
  BenchmarkResult result;
  result.name = name;
  result.options = options;
  // Choose the batch: a per-call warm-up, its median against the threshold.
  std::size_t batch = options.batch;
  {
    std::vector<double> warm(std::max<std::size_t>(options.warmup_iterations, 11));
    detail::timed_samples(body, 1, warm.size(), 0, warm.data());
    result.warmup_median_ns = detail::median_of(warm);
  }
  if (batch == 0) {
    result.batch_automatic = true;
    batch = result.warmup_median_ns < options.batch_threshold_ns
                ? detail::choose_batch(body, options.batch_target_ns)
                : 1;
  }
  result.batch = batch;
  result.timing_method = detail::describe_timing(result);

  std::vector<double> run_medians;
  for (int rep = 0; rep < options.repetitions; ++rep) {
    BenchmarkRun run;
    detail::timed_samples(body, batch, 0, options.warmup_iterations, nullptr);
    run.warmup_samples = options.warmup_iterations;
    double typical_ns = result.warmup_median_ns * static_cast<double>(batch);
    if (options.warmup_until_settled) detail::settle(body, batch, options, typical_ns, run);
    double elapsed_s = 0.0;
    while (true) {
      const std::size_t n =
          detail::chunk_size(options, run.samples_ns.size(), elapsed_s, typical_ns);
      const std::size_t before = run.samples_ns.size();
      run.samples_ns.resize(before + n);
      const std::int64_t start = now_ns();
      detail::timed_samples(body, batch, n, 0, run.samples_ns.data() + before);
      elapsed_s += static_cast<double>(now_ns() - start) / 1e9;
      ++run.chunks;
      run.median_ns = detail::median_of(run.samples_ns);
      typical_ns = run.median_ns * static_cast<double>(batch);
      if (detail::decide(options, run, elapsed_s)) break;
    }
    run.wall_s = elapsed_s;
    result.iterations += static_cast<std::uint64_t>(run.samples_ns.size()) * batch;
    result.samples.record_many(run.samples_ns.data(), run.samples_ns.size());
    run_medians.push_back(run.median_ns);
    result.runs.push_back(std::move(run));
  }

  detail::aggregate_runs(result, run_medians);
  return result;
}

}  // namespace pyinfer

#if PYINFER_DETAIL_DEFINE_COMPILED
#include "pyinfer/detail/benchmark_compiled.hpp"
#endif
