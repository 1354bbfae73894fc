// Bindings of the CUDA driver queries, the event timer and pinned memory.
#include <pybind11/pybind11.h>

#include "bindings.hpp"

namespace pyinfer::bindings {

void bind_cuda(py::module_& m) { (void)m; }

}  // namespace pyinfer::bindings
