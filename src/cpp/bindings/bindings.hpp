// Declarations shared by the binding translation units of pyinfer._core.
#pragma once

#include <pybind11/pybind11.h>

namespace pyinfer::bindings {

namespace py = pybind11;

void bind_clock(py::module_& m);   // clock.cpp: now_ns, clock_info, time_calls
void bind_stats(py::module_& m);   // stats.cpp: Summary, summarize, LatencyRecorder
void bind_memory(py::module_& m);  // memory.cpp: rss_bytes, peak RSS
void bind_cuda(py::module_& m);    // cuda.cpp: driver queries, CudaEventTimer, pinned memory

}  // namespace pyinfer::bindings
