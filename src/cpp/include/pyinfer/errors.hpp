// Exceptions thrown by the pyinfer C++ core.
//
// Every public function documents which of these it throws. The Python bindings translate each
// one to the matching class in `pyinfer.errors` (InvalidArgument -> InvalidArgumentError, ...).
#pragma once

#include "pyinfer/detail/config.hpp"

#include <stdexcept>
#include <string>

namespace pyinfer {

/// An argument is out of its domain: a negative or NaN duration, zero iterations, a percentile
/// outside [0, 100], an empty sample set, mismatched histogram settings.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// CUDA was asked for but cannot be used here: no driver library, no device, or the driver
/// failed to initialise. The message says which.
class CudaUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A CUDA driver call failed. `code()` is the driver's CUresult.
class CudaError : public std::runtime_error {
 public:
  CudaError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// The CUresult the driver returned.
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// An allocation failed (host or page-locked memory).
class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A buffer cannot be freed or resized while views of it are alive.
class BufferInUse : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pyinfer
