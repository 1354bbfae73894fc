// Benchmarks run by tests/test_benchmark_harness.py through PYINFER_BENCHMARK_MAIN: each one
// exercises one part of the harness (select one with --filter '^name$').
#include <pyinfer/benchmark.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace {

// A dependent chain of `steps` multiply-adds: its time grows with `steps`, linearly.
std::uint64_t chain(std::size_t steps) {
  std::uint64_t x = 1;
  pyinfer::do_not_optimize(x);
  for (std::size_t i = 0; i < steps; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    pyinfer::do_not_optimize(x);
  }
  return x;
}

void chain_options(pyinfer::Benchmark& bench, std::size_t steps) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.items_per_iteration = static_cast<double>(steps);
  o.bytes_per_iteration = static_cast<double>(steps * sizeof(std::uint64_t));
  o.counters.push_back({"steps", static_cast<double>(steps), true});
  o.counters.push_back({"constant", 42.0, false});
}

}  // namespace

// The same body, twice as long in chain_2x: `pyinfer compare --fail-if-slower` must tell.
PYINFER_BENCHMARK(chain_1x) {
  chain_options(bench, 1000);
  bench.run([] { pyinfer::do_not_optimize(chain(1000)); });
}

PYINFER_BENCHMARK(chain_2x) {
  chain_options(bench, 2000);
  bench.run([] { pyinfer::do_not_optimize(chain(2000)); });
}

// A no-op: far under 50 ns, so batched automatically.
PYINFER_BENCHMARK(noop) {
  int x = 0;
  bench.run([&x] { pyinfer::do_not_optimize(x); });
}

PYINFER_BENCHMARK(noop_batch_8) {
  bench.options().batch = 8;
  int x = 0;
  bench.run([&x] { pyinfer::do_not_optimize(x); });
}

PYINFER_BENCHMARK(noop_per_call) {
  bench.options().batch = 1;
  int x = 0;
  bench.run([&x] { pyinfer::do_not_optimize(x); });
}

// The minimum count reached with no minimum time: exactly 250 samples, stable.
PYINFER_BENCHMARK(exact_count) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.min_iterations = 250;
  o.max_iterations = 250;
  o.batch = 1;
  bench.run([] { pyinfer::do_not_optimize(chain(100)); });
}

// A stability target no run meets: it stops at the iteration cap, not stable. The calls
// alternate between two lengths, so the samples always spread (on a quiet machine ten calls of
// one length can take the same number of ticks: a spread of 0, which meets any target).
PYINFER_BENCHMARK(iteration_cap) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.min_iterations = 10;
  o.max_iterations = 300;
  o.stability_target = 1e-12;
  o.batch = 1;
  std::size_t n = 0;
  bench.run([&n] { pyinfer::do_not_optimize(chain(++n % 2 == 0 ? 100 : 300)); });
}

// The same at the time cap.
PYINFER_BENCHMARK(time_cap) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.max_time_s = 0.05;
  o.max_iterations = 100000000;
  o.stability_target = 1e-12;
  o.batch = 1;
  std::size_t n = 0;
  bench.run([&n] { pyinfer::do_not_optimize(chain(++n % 2 == 0 ? 1000 : 3000)); });
}

// Statistics without the samples in the report.
PYINFER_BENCHMARK(no_samples) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.min_iterations = 100;
  o.max_iterations = 100;
  o.json_samples = false;
  bench.run([] { pyinfer::do_not_optimize(chain(100)); });
}

// Forgets to call bench.run(): reported, exit status 1.
PYINFER_BENCHMARK(never_runs) {}

PYINFER_BENCHMARK_MAIN()

// The Python stopping rule's other stability measure: the median's 95% confidence interval.
PYINFER_BENCHMARK(median_ci_target) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.min_iterations = 200;
  o.max_iterations = 200;
  o.stability_metric = "median_ci";
  o.stability_target = 0.5;
  o.batch = 1;
  bench.run([] { pyinfer::do_not_optimize(chain(100)); });
}

// A measure the rule does not know: InvalidArgument before anything runs.
PYINFER_BENCHMARK(unknown_metric) {
  pyinfer::BenchmarkOptions o = bench.options();
  o.stability_metric = "iqr";
#if PYINFER_HAS_EXCEPTIONS  // without them the error aborts: not tried there
  try {
    pyinfer::run_benchmark("unknown", [] {}, o);
  } catch (const pyinfer::InvalidArgument& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
#endif
  bench.options().min_time_s = 0.0;
  bench.options().max_iterations = 100;
  bench.run([] { pyinfer::do_not_optimize(chain(100)); });
}

// Warm-up until settled: the first 150 calls are ten times slower (a cold start). The batch
// probe takes 11 of them, the first window of 100 samples is slow, the second mostly fast (its
// median differs), the third agrees with it: settled after 300 warm-up samples.
PYINFER_BENCHMARK(settling) {
  pyinfer::BenchmarkOptions& o = bench.options();
  o.min_time_s = 0.0;
  o.min_iterations = 100;
  o.max_iterations = 100;
  o.warmup_iterations = 0;
  o.warmup_until_settled = true;
  o.settle_tolerance = 0.5;
  o.batch = 1;
  std::size_t calls = 0;
  bench.run([&calls] { pyinfer::do_not_optimize(chain(++calls <= 150 ? 2000 : 200)); });
}
