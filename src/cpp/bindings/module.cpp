// pyinfer._core: the native core of pyinfer. Users import it through `pyinfer.core`.
#include <pybind11/pybind11.h>

#include <exception>

#include "bindings.hpp"
#include "pyinfer/errors.hpp"

#define PYINFER_STRINGIFY_(x) #x
#define PYINFER_STRINGIFY(x) PYINFER_STRINGIFY_(x)

namespace py = pybind11;

namespace {

// Raises the pyinfer.errors class `name` with `message` (the translator runs with the GIL held).
void set_error(const char* name, const char* message) {
  py::object cls = py::module_::import("pyinfer.errors").attr(name);
  PyErr_SetString(cls.ptr(), message);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "Native core of pyinfer (use the documented re-exports in pyinfer.core).";
  m.attr("__version__") = PYINFER_STRINGIFY(PYINFER_VERSION_INFO);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyinfer::InvalidArgument& e) {
      set_error("InvalidArgumentError", e.what());
    } catch (const pyinfer::CudaUnavailable& e) {
      set_error("CudaUnavailableError", e.what());
    } catch (const pyinfer::CudaError& e) {
      set_error("CudaError", e.what());
    } catch (const pyinfer::OutOfMemory& e) {
      set_error("OutOfMemoryError", e.what());
    } catch (const pyinfer::BufferInUse& e) {
      set_error("BufferInUseError", e.what());
    }
  });

  pyinfer::bindings::bind_clock(m);
  pyinfer::bindings::bind_stats(m);
  pyinfer::bindings::bind_memory(m);
  pyinfer::bindings::bind_cuda(m);
  pyinfer::bindings::bind_load(m);
}
