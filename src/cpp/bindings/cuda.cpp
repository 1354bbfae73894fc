// Bindings of the CUDA driver queries, the event timer and pinned memory.
//
// Nothing here touches the driver at import: libcuda.so.1 is loaded by the first call that
// needs it. Calls that may wait (driver loading, allocation, synchronisation) release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/cuda_timer.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/pinned_buffer.hpp"
#include "pyinfer/recorder.hpp"
#include "python_calls.hpp"

namespace pyinfer::bindings {

namespace {

using release_gil = py::call_guard<py::gil_scoped_release>;

// ---- argument conversion --------------------------------------------------------------------

// A stream handle from an int, or from an object with an int `cuda_stream` attribute (a
// torch.cuda.Stream).
std::uintptr_t stream_handle(const py::handle& stream) {
  py::object value = py::reinterpret_borrow<py::object>(stream);
  if (!PyLong_Check(value.ptr()) && py::hasattr(value, "cuda_stream")) {
    value = value.attr("cuda_stream");
  }
  if (!PyLong_Check(value.ptr())) {
    throw InvalidArgument(
        std::string("stream must be an int stream handle (e.g. "
                    "torch.cuda.current_stream().cuda_stream), got an object of type ") +
        Py_TYPE(stream.ptr())->tp_name);
  }
  const unsigned long long handle = PyLong_AsUnsignedLongLong(value.ptr());
  if (PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    throw InvalidArgument("stream handle must be a non-negative int below 2**64, got " +
                          py::repr(value).cast<std::string>());
  }
  return static_cast<std::uintptr_t>(handle);
}

// A count or size that must be at least `minimum`.
std::size_t count_arg(long long value, const char* name, long long minimum) {
  if (value < minimum) {
    throw InvalidArgument(std::string(name) + " must be at least " + std::to_string(minimum) +
                          ", got " + std::to_string(value));
  }
  return static_cast<std::size_t>(value);
}

py::array_t<double> to_numpy(const std::vector<double>& values) {
  py::array_t<double> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

// ---- the buffer protocol of PinnedBuffer ------------------------------------------------------

// Per-export storage, owned by Py_buffer::internal.
struct ExportInfo {
  Py_ssize_t shape[1];
  Py_ssize_t strides[1];
  PinnedBuffer* buffer;  // kept alive by view->obj
};

// Sets the Python error for the exception being handled (inside a catch block).
void set_python_error() noexcept {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const InvalidArgument& e) {
    // ValueError subclass, like using a closed file or mmap.
    PyObject* errors = PyImport_ImportModule("pyinfer.errors");
    PyObject* cls =
        errors != nullptr ? PyObject_GetAttrString(errors, "InvalidArgumentError") : nullptr;
    if (cls != nullptr) {
      PyErr_SetString(cls, e.what());
    } else {
      PyErr_Clear();
      PyErr_SetString(PyExc_ValueError, e.what());
    }
    Py_XDECREF(cls);
    Py_XDECREF(errors);
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_BufferError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_BufferError, "unknown error while exporting a PinnedBuffer");
  }
}

// bf_getbuffer: a writable 1-D buffer of unsigned bytes, counted as an export.
int pinned_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  if (view == nullptr) {
    PyErr_SetString(PyExc_BufferError, "PinnedBuffer: NULL Py_buffer");
    return -1;
  }
  view->obj = nullptr;
  ExportInfo* info = nullptr;
  try {
    auto* buffer = py::handle(obj).cast<PinnedBuffer*>();
    info = new ExportInfo{{static_cast<Py_ssize_t>(buffer->size())}, {1}, buffer};
    std::byte* data = buffer->add_export();  // throws when closed
    view->buf = data;
  } catch (...) {
    delete info;
    set_python_error();
    return -1;
  }
  view->obj = obj;
  Py_INCREF(obj);
  view->len = info->shape[0];
  view->readonly = 0;
  view->itemsize = 1;
  view->format = (flags & PyBUF_FORMAT) != 0 ? const_cast<char*>("B") : nullptr;
  view->ndim = 1;
  view->shape = (flags & PyBUF_ND) == PyBUF_ND ? info->shape : nullptr;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? info->strides : nullptr;
  view->suboffsets = nullptr;
  view->internal = info;
  return 0;
}

// bf_releasebuffer: the export ends (Python then drops view->obj).
void pinned_releasebuffer(PyObject* /*obj*/, Py_buffer* view) {
  auto* info = static_cast<ExportInfo*>(view->internal);
  if (info == nullptr) return;
  info->buffer->remove_export();
  delete info;
  view->internal = nullptr;
}

// ---- numpy view -----------------------------------------------------------------------------

py::object numpy_view(const py::object& self, const py::object& dtype, const py::object& shape) {
  py::module_ np = py::module_::import("numpy");
  if (shape.is_none()) return np.attr("frombuffer")(self, py::arg("dtype") = dtype);
  py::tuple dims = PyIndex_Check(shape.ptr()) != 0 ? py::make_tuple(shape) : py::tuple(shape);
  py::object count = py::module_::import("math").attr("prod")(dims);
  return np.attr("frombuffer")(self, py::arg("dtype") = dtype, py::arg("count") = count)
      .attr("reshape")(dims);
}

// ---- timed calls ----------------------------------------------------------------------------

py::tuple timer_time_calls(CudaEventTimer& timer, const py::object& fn, long long iterations,
                           long long warmup) {
  check_loop_arguments(fn, iterations, warmup);
  const auto n = static_cast<std::size_t>(iterations);
  std::vector<double> host(n);
  PythonCallLoop loop(fn);
  const std::size_t done = timer.time_calls(loop.call(), loop.finish(), n,
                                            static_cast<std::size_t>(warmup), host.data());
  if (loop.stopped()) {
    timer.reset();  // the GPU times of an interrupted loop are not returned
    loop.raise_with_partial(std::move(host), done);
  }
  std::vector<double> gpu;
  {
    py::gil_scoped_release release;
    gpu = timer.elapsed_ms();
  }
  return py::make_tuple(to_numpy(gpu), py::cast(LatencyRecorder::from_samples(std::move(host))));
}

std::string buffer_repr(const PinnedBuffer& b) {
  return "PinnedBuffer(nbytes=" + std::to_string(b.size()) +
         ", pinned=" + (b.pinned() ? "True" : "False") + ", device=" + std::to_string(b.device()) +
         (b.closed() ? ", closed=True)" : ")");
}

}  // namespace

void bind_cuda(py::module_& m) {
  // ---- driver queries ----------------------------------------------------------------------
  m.def("cuda_available", &cuda_available, release_gil(),
        "True when CUDA can be used: libcuda.so.1 loads, cuInit succeeds and a device is\n"
        "visible. The first call loads the driver. Never raises.");
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason, release_gil(),
        "Why CUDA is unavailable, or '' when it is available.");
  m.def("cuda_driver_version", &cuda_driver_version, release_gil(),
        "CUDA version the driver supports, 1000 * major + 10 * minor (13000 for 13.0).");
  m.def("cuda_device_count", &cuda_device_count, release_gil(),
        "Number of visible CUDA devices; 0 without a usable driver.");
  m.def("cuda_device_name", &cuda_device_name, py::arg("index") = 0, release_gil(),
        "Name of CUDA device `index`.");
  m.def("cuda_device_total_memory", &cuda_device_total_memory, py::arg("index") = 0, release_gil(),
        "Total memory of CUDA device `index`, in bytes.");
  m.def("cuda_mem_get_info", &cuda_mem_get_info, py::arg("index") = 0, release_gil(),
        "(free, total) memory of CUDA device `index` in bytes, device-wide.");

  // ---- event timer -------------------------------------------------------------------------
  py::class_<CudaEventTimer>(m, "CudaEventTimer",
                             "GPU durations from CUDA event pairs recorded on one stream,\n"
                             "resolved with one synchronisation.")
      .def(py::init([](const py::object& stream, int device, long long capacity) {
             const std::uintptr_t handle = stream_handle(stream);
             const std::size_t pairs = count_arg(capacity, "capacity", 1);
             py::gil_scoped_release release;
             return std::make_unique<CudaEventTimer>(handle, device, pairs);
           }),
           py::arg("stream") = 0, py::arg("device") = 0, py::arg("capacity") = 1024)
      .def("start", &CudaEventTimer::start, "Records a start event on the stream (no wait).")
      .def("stop", &CudaEventTimer::stop, "Records the matching stop event (no wait).")
      .def(
          "elapsed_ms",
          [](CudaEventTimer& self) {
            std::vector<double> ms;
            {
              py::gil_scoped_release release;
              ms = self.elapsed_ms();
            }
            return to_numpy(ms);
          },
          "Waits once for the last stop and returns each pending pair's GPU time in ms.")
      .def("reset", &CudaEventTimer::reset, "Forgets pending pairs and an open start().")
      .def(
          "reserve",
          [](CudaEventTimer& self, long long pairs) {
            const std::size_t n = count_arg(pairs, "pairs", 0);
            py::gil_scoped_release release;
            self.reserve(n);
          },
          py::arg("pairs"), "Grows the event pool to at least `pairs` pairs now.")
      .def_property_readonly("pending", &CudaEventTimer::pending,
                             "Completed pairs waiting for elapsed_ms().")
      .def_property_readonly("started", &CudaEventTimer::started,
                             "True between start() and stop().")
      .def_property_readonly("capacity", &CudaEventTimer::capacity, "Event pairs in the pool.")
      .def_property_readonly(
          "stream",
          [](const CudaEventTimer& self) { return static_cast<std::uint64_t>(self.stream()); },
          "The stream handle.")
      .def_property_readonly("device", &CudaEventTimer::device)
      .def("time_calls", &timer_time_calls, py::arg("fn"), py::arg("iterations"),
           py::arg("warmup") = 0,
           "Times fn() `iterations` times on the GPU (events) and the host; returns\n"
           "(gpu_ms array, host LatencyRecorder in ns). One synchronisation at the end.")
      .def("__repr__", [](const CudaEventTimer& self) {
        return "CudaEventTimer(stream=" + std::to_string(self.stream()) +
               ", device=" + std::to_string(self.device()) +
               ", pending=" + std::to_string(self.pending()) + ")";
      });

  // ---- pinned memory -----------------------------------------------------------------------
  py::class_<PinnedBuffer, std::shared_ptr<PinnedBuffer>> buffer(
      m, "PinnedBuffer", py::buffer_protocol(), py::is_final(),
      "Page-locked host memory exposed through the buffer protocol (zero-copy numpy/torch).");
  // pybind11 installed its own buffer slots (for def_buffer); ours count the exports instead.
  auto* heap_type = reinterpret_cast<PyHeapTypeObject*>(buffer.ptr());
  heap_type->as_buffer.bf_getbuffer = &pinned_getbuffer;
  heap_type->as_buffer.bf_releasebuffer = &pinned_releasebuffer;
  heap_type->ht_type.tp_as_buffer = &heap_type->as_buffer;
  PyType_Modified(&heap_type->ht_type);

  buffer
      .def(py::init([](long long nbytes, int device, bool allow_pageable) {
             const std::size_t size = count_arg(nbytes, "nbytes", 1);
             py::gil_scoped_release release;
             return std::make_shared<PinnedBuffer>(size, device, allow_pageable);
           }),
           py::arg("nbytes"), py::kw_only(), py::arg("device") = 0,
           py::arg("allow_pageable") = false)
      .def_property_readonly("nbytes", &PinnedBuffer::size, "Size in bytes.")
      .def_property_readonly("pinned", &PinnedBuffer::pinned,
                             "True when page-locked; False for the pageable fallback.")
      .def_property_readonly("device", &PinnedBuffer::device)
      .def_property_readonly(
          "address",
          [](const PinnedBuffer& self) { return static_cast<std::uint64_t>(self.address()); },
          "Address of the first byte.")
      .def_property_readonly("closed", &PinnedBuffer::closed)
      .def("close", &PinnedBuffer::close, release_gil(),
           "Frees the memory now; raises BufferInUseError while views are alive.")
      .def("numpy", &numpy_view, py::arg("dtype") = "uint8", py::arg("shape") = py::none(),
           "A zero-copy numpy array over the buffer (np.frombuffer, then reshape).")
      .def("__enter__", [](const py::object& self) { return self; })
      .def("__exit__", [](PinnedBuffer& self, const py::args&) { self.close(); })
      .def("__repr__", &buffer_repr);

  py::class_<PinnedRing>(m, "PinnedRing",
                         "Slots of pinned memory in one allocation, for double-buffered uploads.")
      .def(py::init([](long long slot_nbytes, long long slots, int device, bool allow_pageable) {
             const std::size_t size = count_arg(slot_nbytes, "slot_nbytes", 1);
             const std::size_t n = count_arg(slots, "slots", 1);
             py::gil_scoped_release release;
             return std::make_unique<PinnedRing>(size, n, device, allow_pageable);
           }),
           py::arg("slot_nbytes"), py::arg("slots") = 2, py::kw_only(), py::arg("device") = 0,
           py::arg("allow_pageable") = false)
      .def_property_readonly("slots", &PinnedRing::slots)
      .def_property_readonly("slot_nbytes", &PinnedRing::slot_nbytes)
      .def_property_readonly("slot_stride", &PinnedRing::slot_stride)
      .def_property_readonly("pinned", &PinnedRing::pinned)
      .def_property_readonly("device", &PinnedRing::device)
      .def_property_readonly("closed", &PinnedRing::closed)
      .def("__len__", &PinnedRing::slots)
      .def(
          "slot",
          [](const PinnedRing& self, long long index) {
            return self.slot(count_arg(index, "index", 0));
          },
          py::arg("index"), "Slot `index` as a PinnedBuffer sharing the ring's memory.")
      .def("acquire", &PinnedRing::acquire, release_gil(),
           "Next slot index (round-robin), after its previous upload finished.")
      .def(
          "release",
          [](PinnedRing& self, long long index, const py::object& stream) {
            const std::size_t i = count_arg(index, "index", 0);
            const std::uintptr_t handle = stream_handle(stream);
            py::gil_scoped_release release;
            self.release(i, handle);
          },
          py::arg("index"), py::arg("stream") = 0,
          "Records that slot `index` is read by the work enqueued so far on `stream`.")
      .def("close", &PinnedRing::close, release_gil(),
           "Waits for uploads in flight, then frees the memory.")
      .def("__enter__", [](const py::object& self) { return self; })
      .def("__exit__",
           [](PinnedRing& self, const py::args&) {
             py::gil_scoped_release release;
             self.close();
           })
      .def("__repr__", [](const PinnedRing& self) {
        return "PinnedRing(slot_nbytes=" + std::to_string(self.slot_nbytes()) +
               ", slots=" + std::to_string(self.slots()) +
               ", pinned=" + (self.pinned() ? "True" : "False") +
               (self.closed() ? ", closed=True)" : ")");
      });
}

}  // namespace pyinfer::bindings
