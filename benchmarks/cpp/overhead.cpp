// The per-call figures of pyinfer's C++ harness against a steady_clock loop and google-benchmark,
// for a no-op and a 64x64 single-precision matrix multiply. Built once per VARIANT by
// benchmarks/bench_cpp_harness.py:
//   PYINFER_CALL   pyinfer::run_benchmark, one call per sample (batch = 1)
//   PYINFER_BATCH  pyinfer::run_benchmark, batch chosen by the harness (k calls per sample)
//   STEADY         a hand-written loop: steady_clock::now() around every call
//   GBENCH         google-benchmark (Debian's libbenchmark-dev)
// Prints "noop <median ns per call>", "noop_wall <wall ns per call of the timing loop>",
// "tick <median ns per call>" (an increment the compiler must keep: the smallest real body) and
// "matmul <median ns per call>".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#if defined(GBENCH)
#include <benchmark/benchmark.h>
#else
#include <pyinfer/pyinfer.hpp>
#endif

namespace {

constexpr int kN = 64;
std::vector<float> a(kN* kN, 1.0f), b(kN* kN, 0.5f), c(kN* kN, 0.0f);

void matmul() {
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kN; ++j) c[static_cast<std::size_t>(i * kN + j)] = 0.0f;
    for (int k = 0; k < kN; ++k) {
      const float aik = a[static_cast<std::size_t>(i * kN + k)];
      for (int j = 0; j < kN; ++j) {
        c[static_cast<std::size_t>(i * kN + j)] += aik * b[static_cast<std::size_t>(k * kN + j)];
      }
    }
  }
}

}  // namespace

#if defined(GBENCH)
static void noop(benchmark::State& state) {
  for (auto _ : state) {
  }
}
static void tick(benchmark::State& state) {
  long k = 0;
  for (auto _ : state) {
    ++k;
    benchmark::DoNotOptimize(k);
  }
}
static void mm(benchmark::State& state) {
  for (auto _ : state) {
    matmul();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(noop)->MinTime(0.5);
BENCHMARK(tick)->MinTime(0.5);
BENCHMARK(mm)->MinTime(0.5);
BENCHMARK_MAIN();
#else
namespace {

#if defined(STEADY)
double wall_ns = 0.0;  // the last measurement's wall time per call, timing included

template <class F>
double median_ns(F&& body, std::size_t calls) {
  std::vector<double> ns(calls);
  for (std::size_t i = 0; i < 1000 && i < calls; ++i) body();
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const auto t1 = std::chrono::steady_clock::now();
    ns[i] =
        static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  const auto end = std::chrono::steady_clock::now();
  wall_ns = static_cast<double>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()) /
            static_cast<double>(calls);
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(calls / 2), ns.end());
  return ns[calls / 2];
}
#else
double wall_ns = 0.0;  // the last measurement's wall time per call, timing included

template <class F>
double median_ns(F&& body, std::size_t calls) {
  pyinfer::BenchmarkOptions options;
  options.min_iterations = calls;
  options.min_time_s = 0.5;
  options.json_samples = false;
#if defined(PYINFER_CALL)
  options.batch = 1;
#endif
  const pyinfer::BenchmarkResult result = pyinfer::run_benchmark("x", body, options);
  double wall_s = 0.0;
  for (const pyinfer::BenchmarkRun& run : result.runs) wall_s += run.wall_s;
  wall_ns = wall_s * 1e9 / static_cast<double>(result.iterations);
  return result.median_ns();
}
#endif

}  // namespace

int main() {
  std::printf("noop %.6g\n", median_ns([] {}, 200000));
  std::printf("noop_wall %.6g\n", wall_ns);
  long k = 0;
  std::printf("tick %.6g\n", median_ns(
                                 [&k] {
                                   ++k;
#if !defined(STEADY)
                                   pyinfer::do_not_optimize(k);
#else
                                   asm volatile("" : "+g"(k) : : "memory");
#endif
                                 },
                                 200000));
  std::printf("matmul %.6g\n", median_ns(
                                   [] {
                                     matmul();
#if !defined(STEADY)
                                     pyinfer::do_not_optimize(c.data());
                                     pyinfer::clobber_memory();
#else
                                     asm volatile("" : : "g"(c.data()) : "memory");
#endif
                                   },
                                   2000));
  return 0;
}
#endif
