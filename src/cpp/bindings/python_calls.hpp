// Calling a Python callable from a C++ timed loop: shared by time_calls and
// CudaEventTimer.time_calls.
#pragma once

#include <pybind11/eval.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/errors.hpp"
#include "pyinfer/recorder.hpp"

namespace pyinfer::bindings {

namespace py = pybind11;

/// Checks the arguments every timed loop over a Python callable takes.
/// @throws InvalidArgument naming the bad one.
inline void check_loop_arguments(const py::object& fn, long long iterations, long long warmup) {
  if (!PyCallable_Check(fn.ptr())) {
    throw InvalidArgument(std::string("fn must be callable, got an object of type ") +
                          Py_TYPE(fn.ptr())->tp_name);
  }
  if (iterations < 1) {
    throw InvalidArgument("iterations must be at least 1, got " + std::to_string(iterations));
  }
  if (warmup < 0) {
    throw InvalidArgument("warmup must be non-negative, got " + std::to_string(warmup));
  }
}

/// The `call` and `finish` halves of a timed loop (see pyinfer/timed_loop.hpp) over a Python
/// callable. `call` is only the call; `finish` releases the result and, every 64 calls, checks
/// for signals (a C callable never runs bytecode, which is what normally notices Ctrl-C) and,
/// every 1024 calls, enters a no-op Python lambda, where the interpreter honours another
/// thread's request for the GIL as it does between bytecodes. All of that is outside the timed
/// window. Must be used with the GIL held.
class PythonCallLoop {
 public:
  explicit PythonCallLoop(const py::object& fn)
      : callable_(fn.ptr()), yield_function_(py::eval("lambda: None")) {}

  auto call() const noexcept {
    return [callable = callable_]() noexcept { return PyObject_CallNoArgs(callable); };
  }

  auto finish() noexcept {
    return [this](PyObject* result) noexcept {
      if (result == nullptr) {
        call_failed_ = true;
        return false;
      }
      Py_DECREF(result);
      if ((++calls_ & 63U) != 0) return true;
      if (PyErr_CheckSignals() != 0) {
        interrupted_ = true;
        return false;
      }
      if ((calls_ & 1023U) == 0) {
        PyObject* none = PyObject_CallNoArgs(yield_function_.ptr());
        if (none == nullptr) {
          interrupted_ = true;
          return false;
        }
        Py_DECREF(none);
      }
      return true;
    };
  }

  /// True when the loop stopped on an exception or a signal (a Python error is set).
  bool stopped() const noexcept { return call_failed_ || interrupted_; }

  /// Raises the pending Python error with the samples taken before it attached as
  /// `partial_recorder`. `done` is what the timed loop returned: the duration of a call that
  /// raised is not a sample; a sample cut short by a signal after its call returned is.
  [[noreturn]] void raise_with_partial(std::vector<double>&& samples, std::size_t done) const {
    samples.resize(call_failed_ && done > 0 ? done - 1 : done);
    py::error_already_set error;
    try {
      error.value().attr("partial_recorder") =
          py::cast(LatencyRecorder::from_samples(std::move(samples)));
    } catch (py::error_already_set&) {
      // An exception type that takes no attributes: the original error still propagates.
    }
    throw error;
  }

 private:
  PyObject* callable_;
  py::object yield_function_;
  unsigned long calls_ = 0;
  bool call_failed_ = false;
  bool interrupted_ = false;
};

}  // namespace pyinfer::bindings
