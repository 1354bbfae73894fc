// Declarations shared by the binding translation units of pyinfer._core.
#pragma once

#include <pybind11/pybind11.h>

#include <initializer_list>

namespace pyinfer::bindings {

namespace py = pybind11;

void bind_clock(py::module_& m);   // clock.cpp: now_ns, clock_info, time_calls
void bind_stats(py::module_& m);   // stats.cpp: Summary, summarize, LatencyRecorder
void bind_memory(py::module_& m);  // memory.cpp: rss_bytes, peak RSS
void bind_cuda(py::module_& m);    // cuda.cpp: driver queries, CudaEventTimer, pinned memory
void bind_load(py::module_& m);    // load.cpp: arrival schedules, ArrivalScheduler

/// {name: getattr(self, name)} for each of `names`, in order: a to_dict() built from the
/// attributes already bound, so that it cannot drift from them.
template <class T>
py::dict attributes_dict(const T& self, std::initializer_list<const char*> names) {
  const py::object bound = py::cast(&self, py::return_value_policy::reference);
  py::dict d;
  for (const char* name : names) d[name] = bound.attr(name);
  return d;
}

}  // namespace pyinfer::bindings
