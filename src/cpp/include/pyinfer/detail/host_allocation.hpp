// One host allocation behind PinnedBuffer and PinnedRing: page-locked through the CUDA driver,
// or ordinary aligned memory as the fallback. Internal to pyinfer: include
// pyinfer/pinned_buffer.hpp.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <string>

#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/errors.hpp"

namespace pyinfer {

namespace detail {

/// Alignment of pageable fallback memory and of ring slots, in bytes.
constexpr std::size_t kHostAlignment = 4096;

inline std::size_t align_up(std::size_t n, std::size_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

/// One host allocation: page-locked with cuMemHostAlloc(CU_MEMHOSTALLOC_PORTABLE) in the
/// primary context of a device, or (fallback) ordinary 4096-aligned memory. Freed by the
/// destructor. Its contents start uninitialised. Thread-safe (immutable after construction).
class HostAllocation {
 public:
  /// @throws InvalidArgument (nbytes 0, bad device), CudaUnavailable (no CUDA and
  ///         `allow_pageable` false), OutOfMemory, CudaError.
  HostAllocation(std::size_t nbytes, int device, bool allow_pageable) : size_(nbytes) {
    if (nbytes == 0) PYINFER_THROW(InvalidArgument("nbytes must be at least 1, got 0"));
    if (device < 0) {
      PYINFER_THROW(InvalidArgument("CUDA device " + std::to_string(device) + " does not exist"));
    }
    if (cuda_available()) {
      ctx_ = primary_context(device);
      ScopedContext scope(ctx_);
      check(driver_state().api.cuMemHostAlloc(&data_, nbytes, kMemHostAllocPortable),
            ("cuMemHostAlloc of " + std::to_string(nbytes) + " bytes").c_str());
      pinned_ = true;
      return;
    }
    if (!allow_pageable) {
      PYINFER_THROW(CudaUnavailable("page-locked memory needs CUDA: " + cuda_unavailable_reason() +
                                    " (pass allow_pageable=True to fall back to ordinary memory)"));
    }
    if (posix_memalign(&data_, kHostAlignment, align_up(nbytes, kHostAlignment)) != 0) {
      data_ = nullptr;
      PYINFER_THROW(
          OutOfMemory("could not allocate " + std::to_string(nbytes) + " bytes of host memory"));
    }
  }

  ~HostAllocation() {
    if (data_ == nullptr) return;
    if (!pinned_) {
      std::free(data_);
      return;
    }
    ScopedContext scope(ctx_, std::nothrow);
    driver_state().api.cuMemFreeHost(data_);  // fails only at process exit: nothing to do
  }

  HostAllocation(const HostAllocation&) = delete;
  HostAllocation& operator=(const HostAllocation&) = delete;

  std::byte* data() const noexcept { return static_cast<std::byte*>(data_); }
  std::size_t size() const noexcept { return size_; }
  bool pinned() const noexcept { return pinned_; }

 private:
  void* data_ = nullptr;
  std::size_t size_;
  bool pinned_ = false;
  CUcontext ctx_ = nullptr;
};

}  // namespace detail

}  // namespace pyinfer
