// Bindings of the process-memory readings.
#include "pyinfer/process_memory.hpp"

#include <pybind11/pybind11.h>

#include "bindings.hpp"

namespace pyinfer::bindings {

namespace {
PeakRssTracker& tracker() {
  // Leaked on purpose: no thread joins at interpreter shutdown.
  static auto* instance = new PeakRssTracker();
  return *instance;
}
}  // namespace

void bind_memory(py::module_& m) {
  m.def("rss_bytes", &current_rss_bytes, "Resident set size of this process now, in bytes.");
  m.def(
      "reset_peak_rss", []() { return tracker().reset(); },
      py::call_guard<py::gil_scoped_release>(),
      "Starts a new peak-RSS region; returns the method in use ('clear_refs' or 'sampling').");
  m.def(
      "peak_rss_bytes", []() { return tracker().peak_bytes(); },
      "Peak resident set size since the last reset_peak_rss() (since start before any).");
  m.def(
      "peak_rss_method", []() { return tracker().method(); },
      "'clear_refs', 'sampling', or 'lifetime' before the first reset_peak_rss().");
  m.def(
      "_force_peak_rss_sampling", [](bool on) { tracker().force_sampling(on); }, py::arg("on"),
      "Testing aid: use the sampling fallback even where clear_refs works.");
}

}  // namespace pyinfer::bindings
