// What the kernel says about the machine and this process: small readers of its text files
// (/proc, /sys) with C stdio (no iostreams, no locale machinery), and getrusage(). Internal to
// pyinfer: no stability promise.
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pyinfer {
namespace detail {

/// First line of a small text file (without its newline), or "unknown".
inline std::string read_first_line(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return "unknown";
  char buffer[256];
  const bool ok = std::fgets(buffer, sizeof(buffer), f) != nullptr;
  std::fclose(f);
  if (!ok) return "unknown";
  std::string line(buffer);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line.empty() ? "unknown" : line;
}

/// The kernel's current clocksource (Linux: "tsc", "kvm-clock", "hpet", ...), or "unknown".
inline std::string kernel_clocksource() {
  return read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
}

/// A "Name:   123 kB" field of /proc/self/status, in bytes; 0 if absent.
inline std::uint64_t proc_status_bytes(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  const std::size_t len = std::strlen(field);
  char line[256];
  std::uint64_t bytes = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      bytes = std::strtoull(line + len + 1, nullptr, 10) * 1024ULL;
      break;
    }
  }
  std::fclose(f);
  return bytes;
}

/// Peak RSS since the process started (getrusage), in bytes; 0 if unknown.
inline std::uint64_t lifetime_peak_rss_bytes() {
  rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<std::uint64_t>(usage.ru_maxrss) * 1024ULL;  // Linux reports kB
}

}  // namespace detail
}  // namespace pyinfer
