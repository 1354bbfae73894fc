// Definitions of the benchmark harness that do not depend on the body timed: the stopping rule's
// arithmetic, the aggregates, benchmark_main(). Internal to pyinfer: include pyinfer/benchmark.hpp.
// Inline in a header-only build; compiled into the pyinfer library with
// PYINFER_SEPARATE_COMPILATION (pyinfer/detail/config.hpp).
#pragma once

#include <regex.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/benchmark.hpp"
#include "pyinfer/detail/benchmark_report.hpp"

namespace pyinfer {
namespace detail {

PYINFER_COMPILED std::vector<Registered>& registry() {
  static std::vector<Registered> benchmarks;
  return benchmarks;
}

PYINFER_COMPILED bool register_benchmark(const char* name, BenchmarkFunction function) {
  registry().push_back({name, function});
  return true;
}

/// Chunk length the stopping rule works in (the Python profiler's CHUNK_TIME_S).
inline constexpr double kBenchmarkChunkS = 0.1;

PYINFER_COMPILED void check_benchmark_options(const BenchmarkOptions& o) {
  if (o.min_iterations < 1) {
    PYINFER_THROW(InvalidArgument("min_iterations must be at least 1, got 0"));
  }
  if (o.max_iterations < o.min_iterations) {
    PYINFER_THROW(InvalidArgument("max_iterations (" + std::to_string(o.max_iterations) +
                                  ") must be at least min_iterations (" +
                                  std::to_string(o.min_iterations) + ")"));
  }
  if (!(o.min_time_s >= 0.0 && std::isfinite(o.min_time_s) && o.max_time_s > 0.0)) {
    PYINFER_THROW(InvalidArgument("min_time_s must be finite and >= 0 and max_time_s > 0, got " +
                                  std::to_string(o.min_time_s) + " and " +
                                  std::to_string(o.max_time_s)));
  }
  if (o.max_time_s < o.min_time_s) {
    PYINFER_THROW(InvalidArgument("max_time_s (" + std::to_string(o.max_time_s) +
                                  ") must be at least min_time_s (" + std::to_string(o.min_time_s) +
                                  ")"));
  }
  if (!(o.stability_target > 0.0)) {
    PYINFER_THROW(InvalidArgument("stability_target must be above 0 (0.05 is 5%), got " +
                                  std::to_string(o.stability_target)));
  }
  if (o.stability_metric != "cv" && o.stability_metric != "median_ci") {
    PYINFER_THROW(InvalidArgument("unknown stability_metric '" + o.stability_metric +
                                  "'; use one of 'cv', 'median_ci'"));
  }
  if (!(o.settle_tolerance > 0.0)) {
    PYINFER_THROW(InvalidArgument("settle_tolerance must be above 0, got " +
                                  std::to_string(o.settle_tolerance)));
  }
  if (o.repetitions < 1) {
    PYINFER_THROW(
        InvalidArgument("repetitions must be at least 1, got " + std::to_string(o.repetitions)));
  }
  if (!(o.batch_threshold_ns >= 0.0 && o.batch_target_ns > 0.0 &&
        std::isfinite(o.batch_target_ns))) {
    PYINFER_THROW(InvalidArgument("batch_threshold_ns must be >= 0 and batch_target_ns > 0"));
  }
}

PYINFER_COMPILED double median_ci_relative(std::vector<double> values) {
  const std::size_t n = values.size();
  if (n < 3) return std::numeric_limits<double>::infinity();
  std::sort(values.begin(), values.end());
  const double nd = static_cast<double>(n);
  const double half = 1.959963984540054 * std::sqrt(nd) / 2.0;
  const double lo = std::max(0.0, std::floor(nd / 2.0 - half));
  const double hi = std::min(nd - 1.0, std::ceil(nd / 2.0 + half) - 1.0);
  const double median = percentile_of_sorted(values.data(), n, 50.0);
  if (!(median > 0.0)) return std::numeric_limits<double>::infinity();
  return (values[static_cast<std::size_t>(hi)] - values[static_cast<std::size_t>(lo)]) / 2.0 /
         median;
}

PYINFER_COMPILED std::size_t settle_window(double typical_ns) {
  if (!(typical_ns > 0.0)) return 5;
  const double calls = std::round(0.05 / (typical_ns / 1e9));
  return static_cast<std::size_t>(std::min(std::max(calls, 5.0), 100.0));
}

PYINFER_COMPILED double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  return percentile_of_sorted(values.data(), values.size(), 50.0);
}

inline double coefficient_of_variation(const std::vector<double>& v) {
  if (v.size() < 2) return std::numeric_limits<double>::infinity();
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double m2 = 0.0;
  for (double x : v) m2 += (x - mean) * (x - mean);
  const double sd = std::sqrt(m2 / static_cast<double>(v.size() - 1));
  return mean > 0.0 ? sd / mean : std::numeric_limits<double>::infinity();
}

inline std::size_t calls_for(double seconds, double per_call_s) {
  const double calls = seconds / per_call_s;
  if (!std::isfinite(calls) || calls >= 1e18) return std::numeric_limits<std::size_t>::max();
  // Rounded before the ceiling, as in Python: 0.05 s / 1 ms is 50 calls, not 51.
  const double rounded = std::round(calls * 1e6) / 1e6;
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(rounded)));
}

PYINFER_COMPILED std::size_t chunk_size(const BenchmarkOptions& o, std::size_t count,
                                        double elapsed_s, double typical_ns) {
  if (!(typical_ns > 0.0)) return 1;
  const double per_call_s = typical_ns / 1e9;
  std::size_t size = calls_for(kBenchmarkChunkS, per_call_s);
  size = std::min(size, o.max_iterations - std::min(count, o.max_iterations));
  size = std::min(size, calls_for(o.max_time_s - elapsed_s, per_call_s));
  if (count < o.min_iterations) {
    size = std::min(size, o.min_iterations - count);
  } else if (elapsed_s < o.min_time_s) {
    size = std::min(size, calls_for(o.min_time_s - elapsed_s, per_call_s));
  }
  return std::max<std::size_t>(1, size);
}

PYINFER_COMPILED bool decide(const BenchmarkOptions& o, BenchmarkRun& run, double elapsed_s) {
  const std::size_t count = run.samples_ns.size();
  const bool at_min = count >= o.min_iterations && elapsed_s >= o.min_time_s;
  const bool at_cap = count >= o.max_iterations || elapsed_s >= o.max_time_s;
  if (!(at_min || at_cap)) return false;
  const bool ci = o.stability_metric == "median_ci";
  const double value =
      ci ? median_ci_relative(run.samples_ns) : coefficient_of_variation(run.samples_ns);
  const bool stable = !std::isfinite(o.stability_target) || value <= o.stability_target;
  std::string figures = (ci ? "median 95% CI " : "cv ") + format_fixed(value * 100.0, 2) + "%";
  if (std::isfinite(o.stability_target)) {
    figures += (value <= o.stability_target ? " <= " : " > ") +
               format_fixed(o.stability_target * 100.0, 2) + "% target";
  } else {
    figures += ", no target";
  }
  if (at_min && stable) {
    run.stable = true;
    run.stability_value = value;
    run.stop_reason = "stable: " + figures + " after " + std::to_string(count) + " samples in " +
                      format_fixed(elapsed_s, 2) + " s";
    return true;
  }
  if (!at_cap) return false;
  const std::string cap = count >= o.max_iterations
                              ? "iteration cap (" + std::to_string(o.max_iterations) + ")"
                              : "time cap (" + format_g(o.max_time_s, 6) + " s)";
  run.stable = stable;
  run.stability_value = value;
  run.stop_reason = (stable ? "stopped at the " + cap + ": " + figures
                            : "NOT stable: " + figures + ", stopped at the " + cap) +
                    " after " + std::to_string(count) + " samples";
  return true;
}

PYINFER_COMPILED std::string describe_timing(const BenchmarkResult& result) {
  const BenchmarkOptions& options = result.options;
  const std::string clock = TickClock::instance().uses_tsc() ? "TSC" : "CLOCK_MONOTONIC";
  if (result.batch == 1) return "C++ timed loop (" + clock + "), one call per sample";
  return "C++ timed loop (" + clock + "), batches of " + std::to_string(result.batch) +
         " calls per sample, divided (" +
         (result.batch_automatic
              ? "chosen: a call took " + detail::format_g(result.warmup_median_ns) + " ns, under " +
                    detail::format_g(options.batch_threshold_ns) + " ns"
              : std::string("forced")) +
         ")";
}

PYINFER_COMPILED void aggregate_runs(BenchmarkResult& result,
                                     const std::vector<double>& run_medians) {
  const std::vector<double> ranks(kDefaultPercentiles.begin(), kDefaultPercentiles.end());
  result.stats = result.samples.summary(ranks, result.samples.count() > 1 ? 1 : 0);
  BenchmarkAggregates& a = result.aggregates;
  for (double m : run_medians) a.mean_ns += m;
  a.mean_ns /= static_cast<double>(run_medians.size());
  a.median_ns = detail::median_of(run_medians);
  if (run_medians.size() > 1) {
    double m2 = 0.0;
    for (double m : run_medians) m2 += (m - a.mean_ns) * (m - a.mean_ns);
    a.stddev_ns = std::sqrt(m2 / static_cast<double>(run_medians.size() - 1));
    a.cv = a.mean_ns > 0.0 ? a.stddev_ns / a.mean_ns : 0.0;
  }
}

}  // namespace detail

PYINFER_COMPILED int benchmark_main(int argc, char** argv) {
  BenchmarkOptions options;
  std::string json, filter;
  const auto usage = [argv](const char* why) {
    std::fprintf(stderr,
                 "%s: %s\nusage: %s [--json FILE] [--repetitions N] [--min-time S] "
                 "[--filter REGEX]\n",
                 argv[0], why, argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage("runs the benchmarks of this program");
      return 0;
    }
    if (i + 1 >= argc) return usage(("missing value after " + arg).c_str());
    const char* value = argv[++i];
    char* end = nullptr;
    if (arg == "--json") {
      json = value;
    } else if (arg == "--filter") {
      filter = value;
    } else if (arg == "--repetitions") {
      const long n = std::strtol(value, &end, 10);
      if (*end != '\0' || n < 1 || n > 100000) return usage("--repetitions takes an integer >= 1");
      options.repetitions = static_cast<int>(n);
    } else if (arg == "--min-time") {
      const double s = std::strtod(value, &end);
      if (*end != '\0' || !(s >= 0.0) || !std::isfinite(s)) {
        return usage("--min-time takes seconds, 0 or more");
      }
      options.min_time_s = s;
      options.max_time_s = std::max(options.max_time_s, s);
    } else {
      return usage(("unknown option " + arg).c_str());
    }
  }
  regex_t re;
  if (regcomp(&re, filter.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
    return usage(("--filter is not a valid regular expression: " + filter).c_str());
  }
  std::vector<detail::Registered> selected;
  for (const detail::Registered& b : detail::registry()) {
    if (regexec(&re, b.name, 0, nullptr, 0) == 0) selected.push_back(b);
  }
  regfree(&re);
  if (selected.empty()) return usage("no benchmark matches --filter");
  const bool per_name = json.find("{name}") != std::string::npos;
  if (!json.empty() && !per_name && selected.size() > 1) {
    return usage(
        "--json FILE takes one benchmark; select one with --filter, or put {name} in FILE");
  }
  int status = 0;
  for (const detail::Registered& b : selected) {
    Benchmark bench(b.name, options);
    b.function(bench);
    if (!bench.ran()) {
      std::fprintf(stderr, "%s: benchmark %s never called bench.run()\n", argv[0], b.name);
      status = 1;
      continue;
    }
    std::printf("%s\n", bench.result().to_text().c_str());
    std::fflush(stdout);
    if (json.empty()) continue;
    std::string path = json;
    if (per_name) path.replace(path.find("{name}"), 6, b.name);
    if (!bench.result().write_json(path)) {
      std::fprintf(stderr, "%s: cannot write %s: %s\n", argv[0], path.c_str(),
                   std::strerror(errno));
      status = 1;
    }
  }
  return status;
}

}  // namespace pyinfer
