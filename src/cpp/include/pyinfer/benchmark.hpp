// The benchmark harness: the timed loop run until a minimum time, per-call samples, batches of
// calls for very short work, counters, repetitions, and results as a pyinfer profile report.
//
//   pyinfer::BenchmarkOptions options;
//   options.repetitions = 5;
//   options.items_per_iteration = 64;
//   pyinfer::BenchmarkResult r = pyinfer::run_benchmark("sum_64", [&] {
//     pyinfer::do_not_optimize(v.data());
//     double s = 0.0;
//     for (double x : v) s += x;
//     pyinfer::do_not_optimize(s);
//   }, options);
//   std::puts(r.to_text().c_str());
//   r.write_json("sum_64.json");    // read by `pyinfer compare` and pyinfer.ProfileReport.load
//
// Standalone programs register benchmarks with PYINFER_BENCHMARK(name) and end with
// PYINFER_BENCHMARK_MAIN(), which reads --json, --repetitions, --min-time and --filter.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/clock.hpp"
#include "pyinfer/do_not_optimize.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/recorder.hpp"
#include "pyinfer/summary.hpp"
#include "pyinfer/timed_loop.hpp"
#include "pyinfer/version.hpp"

namespace pyinfer {

/// A user counter: a value per iteration of the body, reported as is or, with `rate`, per second
/// (the value divided by the median time of one iteration).
struct BenchmarkCounter {
  std::string name;
  double value = 0.0;
  bool rate = false;
};

/// How long to measure and what to report. The stopping knobs mean what they mean in the Python
/// profiler's stopping rule (pyinfer.profiling.stopping.StoppingRule); a "sample" is one timed
/// call, or one timed batch of calls in batch mode.
struct BenchmarkOptions {
  /// Never stop as stable before this many samples.
  std::size_t min_iterations = 100;
  /// Never stop as stable before this much measured time, in seconds.
  double min_time_s = 0.5;
  /// Stop at this many samples, stable or not.
  std::size_t max_iterations = 1000000;
  /// Stop after this much measured time, stable or not (seconds; infinity: no time cap).
  double max_time_s = 10.0;
  /// The stability measure (stability_metric) must be at or under this to stop at the
  /// minimum; infinity (the default) stops at the minimum whatever it is, as google-benchmark
  /// does. With a target, a run that reaches a cap above it is reported as not stable.
  double stability_target = std::numeric_limits<double>::infinity();
  /// The stability measure stability_target applies to, by the Python stopping rule's names:
  /// "cv" (std / mean, the default) or "median_ci" (the half-width of the median's
  /// distribution-free 95% confidence interval over the median, pyinfer.report.stats'
  /// median_ci_relative: it shrinks as samples accumulate, even on a noisy machine).
  std::string stability_metric = "cv";
  /// Untimed calls made before each repetition's measurement.
  std::size_t warmup_iterations = 10;
  /// Then keep warming up until settled, as the Python profiler's warm-up does: windows of
  /// samples lasting about 0.05 s (5 to 100 samples) until one window's median is within
  /// settle_tolerance of the previous one's, or warmup_max_iterations samples or
  /// warmup_max_time_s seconds (then measured anyway, reported as not settled). Off by default.
  bool warmup_until_settled = false;
  double settle_tolerance = 0.02;
  std::size_t warmup_max_iterations = 1000;
  double warmup_max_time_s = 10.0;
  /// Calls per sample: 0 chooses (1 when a call takes at least batch_threshold_ns, else enough
  /// calls that a sample lasts about batch_target_ns); 1 times every call; k > 1 forces k.
  std::size_t batch = 0;
  /// Calls shorter than this (per-call median in warm-up, the clock read included) are batched.
  double batch_threshold_ns = 50.0;
  /// In automatic batch mode, a batch lasts at least this long.
  double batch_target_ns = 2000.0;
  /// Measurements of the whole thing (warm-up, then calls until the stopping rule says stop),
  /// one after the other in this process. `pyinfer compare --fail-if-slower` needs 4 or more.
  int repetitions = 1;
  /// Items and bytes one iteration processes: reported per second (0: not reported).
  double items_per_iteration = 0.0;
  double bytes_per_iteration = 0.0;
  /// User counters, per iteration.
  std::vector<BenchmarkCounter> counters;
  /// Write every sample into the JSON report (false: the statistics only, a smaller file).
  bool json_samples = true;
};

/// One repetition: its samples (nanoseconds per call; in batch mode each is a batch's time over
/// its calls) and why it stopped.
struct BenchmarkRun {
  std::vector<double> samples_ns;
  double median_ns = 0.0;
  double wall_s = 0.0;
  bool stable = true;
  double stability_value = 0.0;
  std::string stop_reason;
  std::size_t chunks = 0;
  /// Warm-up samples taken (warmup_iterations calls, then the settling windows' samples), and
  /// whether the median settled: 1 yes, 0 no, -1 not asked (warmup_until_settled off).
  std::size_t warmup_samples = 0;
  int warmup_settled = -1;
};

/// Mean, median, standard deviation (n - 1) and coefficient of variation of the repetitions'
/// medians, in nanoseconds (std and cv are 0 for one repetition).
struct BenchmarkAggregates {
  double mean_ns = 0.0;
  double median_ns = 0.0;
  double stddev_ns = 0.0;
  double cv = 0.0;
};

/// What run_benchmark() measured.
struct BenchmarkResult {
  std::string name;
  BenchmarkOptions options;
  /// Calls per sample, and whether that was chosen automatically.
  std::size_t batch = 1;
  bool batch_automatic = false;
  /// The warm-up's per-call median that chose the batch (automatic mode), in nanoseconds.
  double warmup_median_ns = 0.0;
  /// How the calls were timed, in words (the report's timing method).
  std::string timing_method;
  std::vector<BenchmarkRun> runs;
  /// Every repetition's samples pooled.
  LatencyRecorder samples;
  /// Summary of the pooled samples (ddof 1; median, P90, P95, P99, P99.9), nanoseconds.
  Summary stats;
  BenchmarkAggregates aggregates;
  /// Calls of the body that were timed, over every repetition.
  std::uint64_t iterations = 0;

  /// The median time of one iteration, in seconds (the median of the pooled samples).
  double seconds_per_iteration() const noexcept { return median_ns() / 1e9; }
  double median_ns() const noexcept {
    return stats.percentile_values.empty() ? 0.0 : stats.percentile_values[0];
  }
  /// items_per_iteration and bytes_per_iteration over the median iteration (0 when not set).
  double items_per_second() const noexcept { return per_second(options.items_per_iteration); }
  double bytes_per_second() const noexcept { return per_second(options.bytes_per_iteration); }
  /// A counter's reported value: as set, or per second for a rate.
  double counter_value(const BenchmarkCounter& c) const noexcept {
    return c.rate ? per_second(c.value) : c.value;
  }
  /// Whether every repetition stopped stable.
  bool stable() const noexcept {
    for (const BenchmarkRun& r : runs) {
      if (!r.stable) return false;
    }
    return true;
  }

  /// One line per result: name, median, P99, samples, batch and counters.
  PYINFER_COMPILED std::string to_text() const;
  /// The result as a pyinfer profile report (JSON, the schema pyinfer.ProfileReport reads).
  PYINFER_COMPILED std::string to_json() const;
  /// Writes to_json() into `path`. @return false (and errno set) when the file cannot be written.
  PYINFER_COMPILED bool write_json(const std::string& path) const;

 private:
  double per_second(double per_iteration) const noexcept {
    const double s = seconds_per_iteration();
    return s > 0.0 ? per_iteration / s : 0.0;
  }
};

/// Measures `body` (a callable taking no argument; its result is ignored) as `options` says:
/// for each repetition, warm-up calls, then chunks of timed calls of about 0.1 s until the
/// stopping rule stops (the minimum count and time reached and the stability target met, or a
/// cap). The batch size is chosen once, before the first repetition, and kept.
/// @throws InvalidArgument for inconsistent options (the message names the option)
/// Thread-safety: as thread-safe as `body`.
template <class Body>
BenchmarkResult run_benchmark(const std::string& name, Body&& body,
                              const BenchmarkOptions& options = BenchmarkOptions());

// -- registration ------------------------------------------------------------------------------

class Benchmark;

namespace detail {
using BenchmarkFunction = void (*)(Benchmark&);
struct Registered {
  const char* name;
  BenchmarkFunction function;
};
/// The benchmarks PYINFER_BENCHMARK registered, in the order of registration.
PYINFER_COMPILED std::vector<Registered>& registry();
/// Adds a benchmark to registry() (PYINFER_BENCHMARK does it before main()).
PYINFER_COMPILED bool register_benchmark(const char* name, BenchmarkFunction function);
}  // namespace detail

/// What a PYINFER_BENCHMARK body receives as `bench`: the options from the command line (change
/// them before run()), and run(), which measures the callable given and keeps the result.
class Benchmark {
 public:
  Benchmark(std::string name, BenchmarkOptions options)
      : name_(std::move(name)), options_(std::move(options)) {}

  const std::string& name() const noexcept { return name_; }
  BenchmarkOptions& options() noexcept { return options_; }

  /// Measures `body` with options() (see run_benchmark()); call it once per benchmark.
  template <class Body>
  const BenchmarkResult& run(Body&& body) {
    result_ = run_benchmark(name_, std::forward<Body>(body), options_);
    ran_ = true;
    return result_;
  }
  bool ran() const noexcept { return ran_; }
  const BenchmarkResult& result() const noexcept { return result_; }

 private:
  std::string name_;
  BenchmarkOptions options_;
  BenchmarkResult result_;
  bool ran_ = false;
};

/// The main() of PYINFER_BENCHMARK_MAIN: runs every registered benchmark whose name matches
/// --filter (POSIX extended regex, searched anywhere in the name), prints one line each, and with
/// --json FILE writes each as a pyinfer profile report (FILE may hold "{name}", replaced by the
/// benchmark's name; without it, exactly one benchmark must be selected).
/// Exit status: 0, 1 when a report cannot be written, 2 for bad arguments.
PYINFER_COMPILED int benchmark_main(int argc, char** argv);

}  // namespace pyinfer

/// Defines and registers a benchmark; the braces that follow are its body, with `bench`
/// (pyinfer::Benchmark&) in scope: set up, adjust bench.options(), then bench.run(callable).
#define PYINFER_BENCHMARK(name)                                                \
  static void pyinfer_benchmark_##name(::pyinfer::Benchmark& bench);           \
  static const bool pyinfer_benchmark_registered_##name [[maybe_unused]] =     \
      ::pyinfer::detail::register_benchmark(#name, &pyinfer_benchmark_##name); \
  static void pyinfer_benchmark_##name([[maybe_unused]] ::pyinfer::Benchmark& bench)

/// main() for a program of PYINFER_BENCHMARK benchmarks (see pyinfer::benchmark_main).
#define PYINFER_BENCHMARK_MAIN() \
  int main(int argc, char** argv) { return ::pyinfer::benchmark_main(argc, argv); }

// The definitions (run_benchmark, benchmark_main, the report).
#include "pyinfer/detail/benchmark_impl.hpp"
