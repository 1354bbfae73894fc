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

#include <regex.h>
#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
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
  /// The samples' coefficient of variation (std / mean) must be at or under this to stop at the
  /// minimum; infinity (the default) stops at the minimum whatever it is, as google-benchmark
  /// does. With a target, a run that reaches a cap above it is reported as not stable.
  double stability_target = std::numeric_limits<double>::infinity();
  /// Untimed calls made before each repetition's measurement.
  std::size_t warmup_iterations = 10;
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
  inline std::string to_text() const;
  /// The result as a pyinfer profile report (JSON, the schema pyinfer.ProfileReport reads).
  inline std::string to_json() const;
  /// Writes to_json() into `path`. @return false (and errno set) when the file cannot be written.
  inline bool write_json(const std::string& path) const;

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

namespace detail {

/// Chunk length the stopping rule works in (the Python profiler's CHUNK_TIME_S).
inline constexpr double kBenchmarkChunkS = 0.1;

inline void check_benchmark_options(const BenchmarkOptions& o) {
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
  if (o.repetitions < 1) {
    PYINFER_THROW(
        InvalidArgument("repetitions must be at least 1, got " + std::to_string(o.repetitions)));
  }
  if (!(o.batch_threshold_ns >= 0.0 && o.batch_target_ns > 0.0 &&
        std::isfinite(o.batch_target_ns))) {
    PYINFER_THROW(InvalidArgument("batch_threshold_ns must be >= 0 and batch_target_ns > 0"));
  }
}

inline double median_of(std::vector<double> values) {
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

/// The next chunk's size: StoppingRule.chunk_size (about 0.1 s, never past a boundary).
inline std::size_t chunk_size(const BenchmarkOptions& o, std::size_t count, double elapsed_s,
                              double typical_ns) {
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

inline std::string format_g(double value, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, value);
  return buf;
}

inline std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

/// StoppingRule.decide with the "cv" measure: true (and `run` filled) to stop.
inline bool decide(const BenchmarkOptions& o, BenchmarkRun& run, double elapsed_s) {
  const std::size_t count = run.samples_ns.size();
  const bool at_min = count >= o.min_iterations && elapsed_s >= o.min_time_s;
  const bool at_cap = count >= o.max_iterations || elapsed_s >= o.max_time_s;
  if (!(at_min || at_cap)) return false;
  const double value = coefficient_of_variation(run.samples_ns);
  const bool stable = !std::isfinite(o.stability_target) || value <= o.stability_target;
  std::string figures = "cv " + format_fixed(value * 100.0, 2) + "%";
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

/// Student's t two-sided quantile (pyinfer.report.stats.student_t_quantile): bisection on the
/// closed-form distribution function for integer degrees of freedom.
inline double t_two_sided_cdf(double t, int df) {
  const double pi = 3.14159265358979323846;
  const double theta = std::atan(t / std::sqrt(static_cast<double>(df)));
  const double c2 = std::cos(theta) * std::cos(theta);
  if (df % 2 == 1) {
    double term = std::cos(theta), total = 0.0;
    if (df > 1) {
      total = term;
      for (int k = 3; k < df - 1; k += 2) {
        term *= c2 * (k - 1) / k;
        total += term;
      }
    }
    return 2.0 / pi * (theta + std::sin(theta) * total);
  }
  double term = 1.0, total = 1.0;
  for (int k = 2; k < df - 1; k += 2) {
    term *= c2 * (k - 1) / k;
    total += term;
  }
  return std::sin(theta) * total;
}

inline double student_t_quantile(double confidence, int df) {
  double low = 0.0, high = 2.0;
  while (t_two_sided_cdf(high, df) < confidence) high *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = (low + high) / 2.0;
    if (mid <= low || mid >= high) break;
    if (t_two_sided_cdf(mid, df) < confidence) {
      low = mid;
    } else {
      high = mid;
    }
  }
  return (low + high) / 2.0;
}

// -- JSON writing ---------------------------------------------------------------------------

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

/// A number as the Python reader takes it: shortest exact form, non-finite values as strings.
inline std::string json_number(double v) {
  if (std::isnan(v)) return "\"nan\"";
  if (std::isinf(v)) return v > 0 ? "\"inf\"" : "\"-inf\"";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Always a float literal for the reader (an integer is accepted too, but be explicit).
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

inline std::string json_bool(bool b) { return b ? "true" : "false"; }

inline std::string read_first_line_with(const char* path, const char* key) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return "";
  char line[512];
  std::string found;
  const std::size_t key_len = std::strlen(key);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, key, key_len) == 0) {
      const char* colon = std::strchr(line, ':');
      if (colon == nullptr) continue;
      found = colon + 1;
      break;
    }
  }
  std::fclose(f);
  const std::size_t b = found.find_first_not_of(" \t");
  const std::size_t e = found.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : found.substr(b, e - b + 1);
}

/// Physical cores as /proc/cpuinfo lists them (distinct physical id and core id pairs), or the
/// logical count where it does not say.
inline int physical_core_count(int logical) {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (f == nullptr) return logical;
  std::vector<std::string> cores;
  std::string physical;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    const char* colon = std::strchr(line, ':');
    if (colon == nullptr) continue;
    std::string value = colon + 1;
    while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
    if (std::strncmp(line, "physical id", 11) == 0) physical = value;
    if (std::strncmp(line, "core id", 7) == 0) {
      const std::string id = physical + "/" + value;
      if (std::find(cores.begin(), cores.end(), id) == cores.end()) cores.push_back(id);
    }
  }
  std::fclose(f);
  return cores.empty() ? logical : static_cast<int>(cores.size());
}

/// The report's "environment" object (pyinfer.report.Environment).
inline std::string environment_json() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  char stamp[64] = {0};
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S+00:00", &utc);
  std::string platform_name = "unknown";
  utsname u{};
  if (uname(&u) == 0) {
    platform_name = std::string(u.sysname) + "-" + u.release + "-" + u.machine;
  }
  std::string cpu = read_first_line_with("/proc/cpuinfo", "model name");
  if (cpu.empty()) cpu = uname(&u) == 0 ? std::string(u.machine) : std::string("unknown");
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int logical = online > 0 ? static_cast<int>(online) : 1;
  int affinity = logical;
#if defined(__linux__) && defined(CPU_COUNT)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) affinity = CPU_COUNT(&set);
#endif
  const TickClock& clock = TickClock::instance();
  std::string out = "{";
  out += "\"hostname\": " + json_string(host);
  out += ", \"timestamp\": " + json_string(stamp);
  out += ", \"python\": \"\"";
  out += ", \"platform\": " + json_string(platform_name);
  out += ", \"cpu_model\": " + json_string(cpu);
  out += ", \"physical_cores\": " + std::to_string(physical_core_count(logical));
  out += ", \"logical_cores\": " + std::to_string(logical);
  out += ", \"affinity\": " + std::to_string(affinity);
  out += ", \"versions\": {\"pyinfer\": " + json_string(PYINFER_VERSION_STRING) +
         ", \"compiler\": " +
         json_string(
#if defined(__VERSION__)
             __VERSION__
#else
             "unknown"
#endif
             ) +
         "}";
  out += ", \"clock\": {\"timed_loop_clock\": " + json_string(clock.description()) +
         ", \"ns_per_tick\": " + json_number(clock.ns_per_tick()) + "}";
  out += "}";
  return out;
}

inline std::string stats_json(const Summary& s) {
  // LatencyStats: milliseconds; percentile order is kDefaultPercentiles (50, 90, 95, 99, 99.9).
  const auto ms = [](double ns) { return json_number(ns / 1e6); };
  const std::vector<double>& p = s.percentile_values;
  std::string out = "{\"count\": " + std::to_string(s.count);
  out += ", \"mean_ms\": " + ms(s.mean) + ", \"median_ms\": " + ms(p[0]);
  out += ", \"std_ms\": " + ms(s.std) + ", \"min_ms\": " + ms(s.min) + ", \"max_ms\": " + ms(s.max);
  out += ", \"p90_ms\": " + ms(p[1]) + ", \"p95_ms\": " + ms(p[2]) + ", \"p99_ms\": " + ms(p[3]);
  out += ", \"p999_ms\": " + ms(p[4]) + "}";
  return out;
}

// -- registration -----------------------------------------------------------------------------

}  // namespace detail

class Benchmark;

namespace detail {
using BenchmarkFunction = void (*)(Benchmark&);
struct Registered {
  const char* name;
  BenchmarkFunction function;
};
inline std::vector<Registered>& registry() {
  static std::vector<Registered> benchmarks;
  return benchmarks;
}
inline bool register_benchmark(const char* name, BenchmarkFunction function) {
  registry().push_back({name, function});
  return true;
}
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
inline int benchmark_main(int argc, char** argv);

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

// -- definitions ------------------------------------------------------------------------------

namespace pyinfer {

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
  const std::string clock = TickClock::instance().uses_tsc() ? "TSC" : "CLOCK_MONOTONIC";
  if (batch == 1) {
    result.timing_method = "C++ timed loop (" + clock + "), one call per sample";
  } else {
    result.timing_method =
        "C++ timed loop (" + clock + "), batches of " + std::to_string(batch) +
        " calls per sample, divided (" +
        (result.batch_automatic
             ? "chosen: a call took " + detail::format_g(result.warmup_median_ns) + " ns, under " +
                   detail::format_g(options.batch_threshold_ns) + " ns"
             : std::string("forced")) +
        ")";
  }

  std::vector<double> run_medians;
  for (int rep = 0; rep < options.repetitions; ++rep) {
    BenchmarkRun run;
    detail::timed_samples(body, batch, 0, options.warmup_iterations, nullptr);
    double elapsed_s = 0.0;
    double typical_ns = result.warmup_median_ns * static_cast<double>(batch);
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
  return result;
}

inline std::string BenchmarkResult::to_text() const {
  std::string line = name + ": median " + detail::format_g(median_ns()) + " ns";
  if (stats.percentile_values.size() > 3) {
    line += ", p99 " + detail::format_g(stats.percentile_values[3]) + " ns";
  }
  line += ", " + std::to_string(stats.count) + " samples";
  line += batch == 1 ? ", per call" : ", batch " + std::to_string(batch);
  if (runs.size() > 1) {
    line += ", " + std::to_string(runs.size()) + " repetitions (median of medians " +
            detail::format_g(aggregates.median_ns) + " ns, cv " +
            detail::format_fixed(aggregates.cv * 100.0, 2) + "%)";
  }
  if (options.items_per_iteration > 0.0) {
    line += ", " + detail::format_g(items_per_second()) + " items/s";
  }
  if (options.bytes_per_iteration > 0.0) {
    line += ", " + detail::format_g(bytes_per_second()) + " B/s";
  }
  for (const BenchmarkCounter& c : options.counters) {
    line += ", " + c.name + " " + detail::format_g(counter_value(c)) + (c.rate ? "/s" : "");
  }
  if (!stable()) line += " (NOT stable)";
  return line;
}

inline std::string BenchmarkResult::to_json() const {
  using detail::json_bool;
  using detail::json_number;
  using detail::json_string;
  const double items = options.items_per_iteration;
  const long long batch_size = items >= 1.0 && std::floor(items) == items && items < 9e15
                                   ? static_cast<long long>(items)
                                   : 1;
  double wall_s = 0.0;
  std::size_t count = 0;
  for (const BenchmarkRun& r : runs) {
    wall_s += r.wall_s;
    count += r.samples_ns.size();
  }
  std::string stop_reason = runs.empty() ? std::string() : runs.back().stop_reason;
  if (runs.size() > 1) {
    std::size_t unstable = 0;
    for (const BenchmarkRun& r : runs) unstable += r.stable ? 0 : 1;
    stop_reason = std::to_string(runs.size()) + " repetitions, " + std::to_string(unstable) +
                  " not stable; the last: " + stop_reason;
  }
  std::string out = "{\n";
  out += "  \"schema_version\": \"1.2\",\n";
  out += "  \"model\": " + json_string(name) + ",\n";
  out += "  \"format\": \"c++\",\n";
  out += "  \"framework\": \"pyinfer C++ harness\",\n";
  out += "  \"device\": \"cpu\",\n";
  out += "  \"device_name\": " +
         json_string("CPU (" + detail::read_first_line_with("/proc/cpuinfo", "model name") + ")") +
         ",\n";
  out += "  \"batch_size\": " + std::to_string(batch_size) + ",\n";
  out += "  \"input_shapes\": {},\n  \"input_dtypes\": {},\n";
  out += "  \"latency\": {\"batch_size\": " + std::to_string(batch_size);
  out += ", \"stats\": " + detail::stats_json(stats);
  out += ", \"samples_ns\": [";
  if (options.json_samples) {
    bool first = true;
    for (const BenchmarkRun& r : runs) {
      for (double v : r.samples_ns) {
        out += first ? "" : ", ";
        out += json_number(v);
        first = false;
      }
    }
  }
  out += "], \"warmup_iterations\": " +
         std::to_string(options.warmup_iterations * static_cast<std::size_t>(runs.size()));
  out += ", \"warmup_settled\": null, \"stable\": " + json_bool(stable());
  out += ", \"stability_reason\": " + json_string(stop_reason);
  out += ", \"stability_metric\": \"cv\", \"stability_value\": " +
         json_number(runs.empty() ? 0.0 : runs.back().stability_value);
  out += ", \"timing_method\": " + json_string(timing_method);
  out += ", \"wall_s\": " + json_number(wall_s) + "},\n";
  out += "  \"throughput\": {\"batch_size\": " + std::to_string(batch_size) +
         ", \"calls\": " + std::to_string(iterations) + ", \"wall_s\": " + json_number(wall_s) +
         "},\n";
  if (runs.size() > 1) {
    // pyinfer.report.repetitions.summarize_runs: the interval and reproducibility on the logs
    // of the run medians, Student's t with n - 1 degrees of freedom.
    const std::size_t n = runs.size();
    std::vector<double> logs;
    double lo = runs[0].median_ns, hi = runs[0].median_ns;
    for (const BenchmarkRun& r : runs) {
      logs.push_back(std::log(r.median_ns / 1e6));
      lo = std::min(lo, r.median_ns);
      hi = std::max(hi, r.median_ns);
    }
    double mean_log = 0.0;
    for (double l : logs) mean_log += l;
    mean_log /= static_cast<double>(n);
    double m2 = 0.0;
    for (double l : logs) m2 += (l - mean_log) * (l - mean_log);
    const double s = std::sqrt(m2 / static_cast<double>(n - 1));
    const double t = detail::student_t_quantile(0.95, static_cast<int>(n - 1));
    const double half = t * s / std::sqrt(static_cast<double>(n));
    const double median_ms = median_ns() / 1e6;
    out += "  \"repetitions\": {\"runs\": [";
    for (std::size_t i = 0; i < n; ++i) {
      const BenchmarkRun& r = runs[i];
      out += i ? ", " : "";
      out += "{\"median_ms\": " + json_number(r.median_ns / 1e6) +
             ", \"samples\": " + std::to_string(r.samples_ns.size()) +
             ", \"stable\": " + json_bool(r.stable) + ", \"wall_s\": " + json_number(r.wall_s) +
             "}";
    }
    out += "], \"median_ms\": " + json_number(median_ms);
    out += ", \"interval_low_ms\": " + json_number(median_ms * std::exp(-half));
    out += ", \"interval_high_ms\": " + json_number(median_ms * std::exp(half));
    out += ", \"spread\": " + json_number(hi / lo);
    out += ", \"cv_percent\": " + json_number(aggregates.cv * 100.0);
    out += ", \"reproducibility\": " +
           json_number(std::expm1(t * s * std::sqrt(2.0 / static_cast<double>(n))));
    out += ", \"reproducibility_target\": 0.1";
    out += ", \"method\": " +
           json_string("t interval over " + std::to_string(n) + " run medians, log scale") +
           ", \"in_one_process\": true},\n";
  } else {
    out += "  \"repetitions\": null,\n";
  }
  out += "  \"environment\": " + detail::environment_json() + ",\n";
  // What the harness adds (read by no pyinfer reader yet; ignored by ProfileReport).
  out += "  \"harness\": {\"name\": " + json_string(name);
  out += ", \"batch\": " + std::to_string(batch) + ", \"batch_mode\": " +
         json_string(batch == 1 ? (batch_automatic ? "per-call (chosen)" : "per-call (forced)")
                                : (batch_automatic ? "batch (chosen)" : "batch (forced)"));
  out += ", \"warmup_median_ns\": " + json_number(warmup_median_ns);
  out += ", \"iterations\": " + std::to_string(iterations);
  out += ", \"samples\": " + std::to_string(count);
  out += ", \"run_medians_ns\": [";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    out += (i ? ", " : "") + json_number(runs[i].median_ns);
  }
  out += "], \"aggregates\": {\"mean_ns\": " + json_number(aggregates.mean_ns) +
         ", \"median_ns\": " + json_number(aggregates.median_ns) +
         ", \"stddev_ns\": " + json_number(aggregates.stddev_ns) +
         ", \"cv\": " + json_number(aggregates.cv) + "}";
  out += ", \"items_per_second\": " +
         (options.items_per_iteration > 0.0 ? json_number(items_per_second()) : "null");
  out += ", \"bytes_per_second\": " +
         (options.bytes_per_iteration > 0.0 ? json_number(bytes_per_second()) : "null");
  out += ", \"counters\": {";
  for (std::size_t i = 0; i < options.counters.size(); ++i) {
    const BenchmarkCounter& c = options.counters[i];
    out += (i ? ", " : "") + json_string(c.name) +
           ": {\"value\": " + json_number(counter_value(c)) + ", \"rate\": " + json_bool(c.rate) +
           "}";
  }
  out += "}}\n}\n";
  return out;
}

inline bool BenchmarkResult::write_json(const std::string& path) const {
  const std::string text = to_json();
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

inline int benchmark_main(int argc, char** argv) {
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
