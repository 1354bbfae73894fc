// Definitions of benchmark.hpp's report: BenchmarkResult::to_text(), to_json() and write_json(),
// with the helpers they need (number formatting, JSON text, Student's t, the machine's
// description). Internal to pyinfer: include pyinfer/benchmark.hpp.
#pragma once

#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include "pyinfer/benchmark.hpp"

namespace pyinfer {
namespace detail {

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
/// The first line of a small file (trimmed); false when it cannot be read.
inline bool read_line(const std::string& path, std::string* out) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  char line[4096];
  const bool got = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  if (!got) return false;
  std::string text = line;
  const std::size_t b = text.find_first_not_of(" \t\r\n");
  const std::size_t e = text.find_last_not_of(" \t\r\n");
  *out = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
  return true;
}

/// A kernel CPU list ("0-3,8") as a JSON array of numbers; "null" when unreadable or malformed.
inline std::string cpu_list_json(const std::string& path) {
  std::string text;
  if (!read_line(path, &text)) return "null";
  std::vector<long> cpus;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    const std::string part = text.substr(at, comma - at);
    char* end = nullptr;
    const long lo = std::strtol(part.c_str(), &end, 10);
    long hi = lo;
    if (end == part.c_str()) return "null";
    if (*end == '-') hi = std::strtol(end + 1, &end, 10);
    if (*end != '\0' || hi < lo || lo < 0) return "null";
    for (long c = lo; c <= hi; ++c) cpus.push_back(c);
    at = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::string out = "[";
  for (std::size_t i = 0; i < cpus.size(); ++i) out += (i ? ", " : "") + std::to_string(cpus[i]);
  return out + "]";
}

/// The machine's timing-related settings, with the keys and meaning of the Python reports'
/// Environment.system (pyinfer.report.system.SystemTuning.to_dict), plus the load average and
/// CPU 0's caches: what makes timings steady or noisy, for the reader of a C++ report.
inline std::string system_json(const std::vector<int>& affinity) {
  const std::string cpu_dir = "/sys/devices/system/cpu/";
  std::string line;
  std::string out = "{\"affinity\": [";
  for (std::size_t i = 0; i < affinity.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(affinity[i]);
  }
  out += "]";
  std::string governors = "{";
  std::vector<std::string> groups;
  bool all_governors = true, all_groups = true;
  for (std::size_t i = 0; i < affinity.size(); ++i) {
    const std::string cpu = cpu_dir + "cpu" + std::to_string(affinity[i]);
    if (all_governors && read_line(cpu + "/cpufreq/scaling_governor", &line)) {
      governors +=
          (i ? ", " : "") + json_string(std::to_string(affinity[i])) + ": " + json_string(line);
    } else {
      all_governors = false;
    }
    const std::string group = cpu_list_json(cpu + "/topology/thread_siblings_list");
    if (group == "null") all_groups = false;
    if (all_groups && std::find(groups.begin(), groups.end(), group) == groups.end()) {
      groups.push_back(group);
    }
  }
  out += ", \"governors\": " + (all_governors && !affinity.empty() ? governors + "}" : "null");
  std::string turbo = "null", control;
  if (read_line(cpu_dir + "intel_pstate/no_turbo", &line) && (line == "0" || line == "1")) {
    turbo = json_bool(line == "0");
    control = "/" + cpu_dir.substr(1) + "intel_pstate/no_turbo";
  } else if (read_line(cpu_dir + "cpufreq/boost", &line) && (line == "0" || line == "1")) {
    turbo = json_bool(line == "1");
    control = "/" + cpu_dir.substr(1) + "cpufreq/boost";
  }
  out += ", \"turbo\": " + turbo + ", \"turbo_control\": " + json_string(control);
  out += ", \"smt\": " + (read_line(cpu_dir + "smt/control", &line) ? json_string(line) : "null");
  const bool smt_known = read_line(cpu_dir + "smt/active", &line) && (line == "0" || line == "1");
  out += ", \"smt_active\": " + (smt_known ? json_bool(line == "1") : std::string("null"));
  std::sort(groups.begin(), groups.end(), [](const std::string& a, const std::string& b) {
    return std::strtol(a.c_str() + 1, nullptr, 10) < std::strtol(b.c_str() + 1, nullptr, 10);
  });
  std::string siblings = "[";
  for (std::size_t i = 0; i < groups.size(); ++i) siblings += (i ? ", " : "") + groups[i];
  out += ", \"siblings\": " + (all_groups && !groups.empty() ? siblings + "]" : "null");
  out += ", \"isolated\": " + cpu_list_json(cpu_dir + "isolated");
  out += ", \"nohz_full\": " + cpu_list_json(cpu_dir + "nohz_full");
  const std::string flags = read_first_line_with("/proc/cpuinfo", "flags");
  out += ", \"hypervisor\": " +
         (flags.empty() ? std::string("null")
                        : json_bool((" " + flags + " ").find(" hypervisor ") != std::string::npos));
  double load[3] = {0.0, 0.0, 0.0};
  if (read_line("/proc/loadavg", &line) &&
      std::sscanf(line.c_str(), "%lf %lf %lf", &load[0], &load[1], &load[2]) == 3) {
    out += ", \"load_average\": [" + json_number(load[0]) + ", " + json_number(load[1]) + ", " +
           json_number(load[2]) + "]";
  } else {
    out += ", \"load_average\": null";
  }
  std::string caches = "[";
  for (int index = 0;; ++index) {
    const std::string dir = cpu_dir + "cpu0/cache/index" + std::to_string(index) + "/";
    std::string level, type, size;
    if (!read_line(dir + "level", &level) || !read_line(dir + "type", &type) ||
        !read_line(dir + "size", &size)) {
      break;
    }
    caches += (index ? ", " : "") + std::string("{\"level\": ") + level +
              ", \"type\": " + json_string(type) + ", \"size\": " + json_string(size) + "}";
  }
  out += ", \"caches\": " + caches + "]";
  return out + "}";
}

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
  std::vector<int> cpus;
#if defined(__linux__) && defined(CPU_COUNT)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    affinity = CPU_COUNT(&set);
    for (std::size_t c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(static_cast<int>(c));
    }
  }
#endif
  if (cpus.empty()) {
    for (int c = 0; c < logical; ++c) cpus.push_back(c);
  }
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
  out += ", \"system\": " + system_json(cpus);
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

}  // namespace detail

PYINFER_COMPILED std::string BenchmarkResult::to_text() const {
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

PYINFER_COMPILED std::string BenchmarkResult::to_json() const {
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
  std::size_t warmup = 0;
  int settled = -1;  // any repetition not settled makes it false; null when none was asked
  for (const BenchmarkRun& r : runs) {
    warmup += r.warmup_samples;
    if (r.warmup_settled >= 0)
      settled = settled < 0 ? r.warmup_settled : std::min(settled, r.warmup_settled);
  }
  out += "], \"warmup_iterations\": " + std::to_string(warmup);
  out += ", \"warmup_settled\": " + (settled < 0 ? std::string("null") : json_bool(settled == 1)) +
         ", \"stable\": " + json_bool(stable());
  out += ", \"stability_reason\": " + json_string(stop_reason);
  out += ", \"stability_metric\": " + json_string(options.stability_metric) +
         ", \"stability_value\": " + json_number(runs.empty() ? 0.0 : runs.back().stability_value);
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

PYINFER_COMPILED bool BenchmarkResult::write_json(const std::string& path) const {
  const std::string text = to_json();
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace pyinfer
