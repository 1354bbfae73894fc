// Bindings of the clock and the timed loop.
#include "pyinfer/clock.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/recorder.hpp"
#include "pyinfer/timed_loop.hpp"
#include "python_calls.hpp"

namespace pyinfer::bindings {

namespace {

// Calls `fn` `iterations` times (after `warmup` untimed calls) from C++ and returns the
// durations. On an exception from `fn` or a signal (Ctrl-C), the exception propagates with the
// samples completed before it attached as `partial_recorder`.
LatencyRecorder time_calls(const py::object& fn, long long iterations, long long warmup) {
  check_loop_arguments(fn, iterations, warmup);
  PythonCallLoop loop(fn);
  auto call = loop.call();
  auto finish = loop.finish();
  // Samples are stored in chunks so that a huge `iterations` (a run meant to be stopped with
  // Ctrl-C) does not reserve memory up front; a chunk boundary costs one vector resize.
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  const auto total = static_cast<std::size_t>(iterations);
  std::vector<double> samples;
  samples.reserve(std::min(total, kChunk));
  std::size_t done = 0;
  std::size_t warmup_left = static_cast<std::size_t>(warmup);
  while (done < total) {
    const std::size_t chunk = std::min(kChunk, total - done);
    samples.resize(done + chunk);
    const std::size_t got = timed_loop(call, finish, chunk, warmup_left, samples.data() + done);
    warmup_left = 0;
    done += got;
    if (got < chunk) break;
  }
  if (loop.stopped()) loop.raise_with_partial(std::move(samples), done);
  samples.resize(done);
  return LatencyRecorder::from_samples(std::move(samples));
}

// Wall time in nanoseconds of `n` back-to-back calls of `fn` with no clock read in between:
// the benchmarks' baseline for what a call costs by itself.
std::int64_t call_loop_ns(const py::object& fn, long long n) {
  PyObject* callable = fn.ptr();
  const std::int64_t start = now_ns();
  for (long long i = 0; i < n; ++i) {
    PyObject* result = PyObject_CallNoArgs(callable);
    if (result == nullptr) throw py::error_already_set();
    Py_DECREF(result);
  }
  return now_ns() - start;
}

}  // namespace

void bind_clock(py::module_& m) {
  m.def("now_ns", &now_ns,
        "Monotonic clock in nanoseconds since an unspecified epoch (CLOCK_MONOTONIC).");

  py::class_<ClockInfo>(m, "ClockInfo", "What now_ns() reads and what one read costs.")
      .def_readonly("source", &ClockInfo::source, "The clock read by now_ns().")
      .def_readonly("kernel_clocksource", &ClockInfo::kernel_clocksource,
                    "The kernel clocksource behind it (tsc, kvm-clock, hpet, ...).")
      .def_readonly("resolution_ns", &ClockInfo::resolution_ns,
                    "Resolution the kernel reports, in nanoseconds.")
      .def_readonly("read_cost_ns", &ClockInfo::read_cost_ns,
                    "Measured cost of one now_ns() call, in nanoseconds (median of batches).")
      .def_readonly("min_step_ns", &ClockInfo::min_step_ns,
                    "Smallest non-zero step seen between consecutive reads, in nanoseconds.")
      .def_readonly("timed_loop_clock", &ClockInfo::timed_loop_clock,
                    "The clock time_calls reads (the invariant TSC where usable).")
      .def_readonly("timed_loop_read_cost_ns", &ClockInfo::timed_loop_read_cost_ns,
                    "Measured cost of one read of the timed loop's clock, in nanoseconds.")
      .def("to_dict",
           [](const ClockInfo& c) {
             return attributes_dict(
                 c, {"source", "kernel_clocksource", "resolution_ns", "read_cost_ns", "min_step_ns",
                     "timed_loop_clock", "timed_loop_read_cost_ns"});
           })
      .def("__repr__", [](const ClockInfo& c) {
        return "ClockInfo(source='" + c.source + "', kernel_clocksource='" + c.kernel_clocksource +
               "', resolution_ns=" + std::to_string(c.resolution_ns) +
               ", read_cost_ns=" + std::to_string(c.read_cost_ns) +
               ", min_step_ns=" + std::to_string(c.min_step_ns) + ", timed_loop_clock='" +
               c.timed_loop_clock + "')";
      });

  m.def(
      "clock_info", []() { return clock_info(); }, py::call_guard<py::gil_scoped_release>(),
      "Describes the clock and measures what one read costs (about a millisecond).");

  m.def("time_calls", &time_calls, py::arg("fn"), py::arg("iterations"), py::arg("warmup") = 0,
        "Calls fn() `warmup` times untimed, then `iterations` times from C++, and returns a\n"
        "LatencyRecorder with one duration in nanoseconds per timed call.");

  m.def("_call_loop_ns", &call_loop_ns, py::arg("fn"), py::arg("n"),
        "Benchmark aid: wall time of n untimed back-to-back calls of fn, in nanoseconds.");
}

}  // namespace pyinfer::bindings
