// The CUDA driver, loaded at run time: availability, device queries and primary contexts.
//
// Nothing here needs CUDA to build: the few driver types are declared in detail/ and libcuda.so.1
// is opened with dlopen() at the first call that needs it (never when this header is included or
// when a program starts), so one binary runs on machines with and without an NVIDIA driver and
// beside any CUDA runtime version (torch, ONNX Runtime) the process also loads.
//
// Every object pyinfer creates lives in a device's *primary context*, the one the CUDA runtime
// (and therefore torch and ONNX Runtime) uses. pyinfer makes it current only around its own
// driver calls (push / pop), so the calling thread's current context is never changed.
//
// Header-only: the definitions and the driver machinery (dlsym'd entry points, primary contexts)
// are in pyinfer/detail/cuda_driver_impl.hpp, included at the end.
#pragma once

#include "pyinfer/detail/config.hpp"

#include <cstddef>
#include <string>
#include <utility>

#include "pyinfer/errors.hpp"

namespace pyinfer {

/// True when CUDA can be used: libcuda.so.1 loaded, cuInit succeeded and at least one device is
/// visible. The first call loads the driver. Never throws. Thread-safe.
inline bool cuda_available() noexcept;

/// Why CUDA is unavailable (e.g. "libcuda.so.1 not found: no NVIDIA driver on this machine
/// ..."), or "" when it is available. Thread-safe.
inline std::string cuda_unavailable_reason();

/// The CUDA version the driver supports, as 1000 * major + 10 * minor (13000 for CUDA 13.0).
/// Works when a driver is installed even if no device is usable. Thread-safe.
/// @throws CudaUnavailable when there is no driver library, CudaError if the call fails.
inline int cuda_driver_version();

/// Number of CUDA devices visible to this process (CUDA_VISIBLE_DEVICES applies); 0 when CUDA
/// is unavailable. Never throws. Thread-safe.
inline int cuda_device_count() noexcept;

/// The name of device `index` (e.g. "NVIDIA H200"). Thread-safe.
/// @throws CudaUnavailable, InvalidArgument (no such device), CudaError.
inline std::string cuda_device_name(int index);

/// Total memory of device `index`, in bytes. Does not create a context. Thread-safe.
/// @throws CudaUnavailable, InvalidArgument (no such device), CudaError.
inline std::size_t cuda_device_total_memory(int index);

/// Free and total memory of device `index` in bytes, device-wide (every process's allocations
/// count): `total - free` is the memory in use. Runs in the device's primary context, which the
/// first call creates if nobody has (see detail::primary_context()). Thread-safe.
/// @throws CudaUnavailable, InvalidArgument (no such device), CudaError.
inline std::pair<std::size_t, std::size_t> cuda_mem_get_info(int index);

}  // namespace pyinfer

#include "pyinfer/detail/cuda_driver_impl.hpp"
