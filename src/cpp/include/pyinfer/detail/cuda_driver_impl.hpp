// Definitions of cuda_driver.hpp, and the driver machinery the other CUDA headers share: the
// entry points resolved with dlsym(), the primary contexts, a scoped current context. Internal to
// pyinfer: include pyinfer/cuda_driver.hpp.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/errors.hpp"

// The driver's opaque handle types, declared exactly as cuda.h declares them (so that code which
// also includes cuda.h can pass its CUcontext / CUstream / CUevent values here unchanged).
struct CUctx_st;
struct CUstream_st;
struct CUevent_st;

namespace pyinfer {

namespace detail {

using CUresult = int;
using CUdevice = int;
using CUcontext = CUctx_st*;
using CUstream = CUstream_st*;
using CUevent = CUevent_st*;

constexpr CUresult kCudaSuccess = 0;
constexpr CUresult kCudaErrorOutOfMemory = 2;
constexpr CUresult kCudaErrorNoDevice = 100;
constexpr CUresult kCudaErrorNotReady = 600;
constexpr unsigned kEventDefault = 0x0;          // CU_EVENT_DEFAULT
constexpr unsigned kEventDisableTiming = 0x2;    // CU_EVENT_DISABLE_TIMING
constexpr unsigned kMemHostAllocPortable = 0x1;  // CU_MEMHOSTALLOC_PORTABLE
/// Stream handles at or below this are the special streams: 0 (NULL, the legacy default
/// stream), 1 (CU_STREAM_LEGACY) and 2 (CU_STREAM_PER_THREAD). They mean "the stream of the
/// current context", so pyinfer uses them in the primary context of the device it was given.
constexpr std::uintptr_t kLastSpecialStream = 2;

/// The driver entry points pyinfer uses, resolved with dlsym(). Each name is the one cuda.h
/// maps the API to (the `_v2` versions where there are some).
struct DriverApi {
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDriverGetVersion)(int*) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDeviceGetName)(char*, int, CUdevice) = nullptr;
  CUresult (*cuDeviceTotalMem)(std::size_t*, CUdevice) = nullptr;  // cuDeviceTotalMem_v2
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr;  // cuDevicePrimaryCtxRelease_v2
  CUresult (*cuCtxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;  // cuCtxPushCurrent_v2
  CUresult (*cuCtxPopCurrent)(CUcontext*) = nullptr;  // cuCtxPopCurrent_v2
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext*) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  CUresult (*cuEventCreate)(CUevent*, unsigned) = nullptr;
  CUresult (*cuEventRecord)(CUevent, CUstream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent) = nullptr;
  CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent) = nullptr;  // _v2 where it exists
  CUresult (*cuEventQuery)(CUevent) = nullptr;
  CUresult (*cuEventDestroy)(CUevent) = nullptr;  // cuEventDestroy_v2
  CUresult (*cuMemHostAlloc)(void**, std::size_t, unsigned) = nullptr;
  CUresult (*cuMemFreeHost)(void*) = nullptr;
  CUresult (*cuMemGetInfo)(std::size_t*, std::size_t*) = nullptr;  // cuMemGetInfo_v2
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
};

/// What loading the driver found. Built once per process (see driver_state()), then read-only.
struct DriverState {
  void* library = nullptr;  ///< dlopen() handle of libcuda.so.1 (never closed), or null
  DriverApi api;            ///< every entry point, when `available`
  bool available = false;   ///< library loaded, all entry points found, cuInit OK, devices > 0
  int device_count = 0;     ///< devices visible to this process (0 unless `available`)
  std::string reason;       ///< why CUDA is unavailable; empty when it is available
};

template <class Fn>
bool resolve_symbol(void* library, const char* name, Fn& out) {
  void* symbol = dlsym(library, name);
  out = reinterpret_cast<Fn>(symbol);
  return symbol != nullptr;
}

/// "CUDA_ERROR_X (description)" for a driver result, as far as the driver can say.
inline std::string cuda_error_text(const DriverApi& api, CUresult result) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(result, &name) != kCudaSuccess ||
      name == nullptr) {
    name = "CUDA_ERROR_UNKNOWN_CODE";
  }
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(result, &text) != kCudaSuccess ||
      text == nullptr) {
    text = "no description";
  }
  return std::string(name) + " (" + text + "; CUresult " + std::to_string(result) + ")";
}

inline DriverState load_driver() {
  DriverState s;
  dlerror();  // clear a stale error
  s.library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (s.library == nullptr) {
    const char* why = dlerror();
    s.reason = std::string("libcuda.so.1 not found: no NVIDIA driver on this machine (dlopen: ") +
               (why != nullptr ? why : "unknown error") + ")";
    return s;
  }
  DriverApi& a = s.api;
  std::string missing;
  auto need = [&](const char* name, auto& fn) {
    if (!resolve_symbol(s.library, name, fn))
      missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  need("cuGetErrorName", a.cuGetErrorName);
  need("cuGetErrorString", a.cuGetErrorString);
  need("cuInit", a.cuInit);
  need("cuDriverGetVersion", a.cuDriverGetVersion);
  need("cuDeviceGetCount", a.cuDeviceGetCount);
  need("cuDeviceGet", a.cuDeviceGet);
  need("cuDeviceGetName", a.cuDeviceGetName);
  need("cuDeviceTotalMem_v2", a.cuDeviceTotalMem);
  need("cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain);
  need("cuDevicePrimaryCtxRelease_v2", a.cuDevicePrimaryCtxRelease);
  need("cuCtxGetCurrent", a.cuCtxGetCurrent);
  need("cuCtxSetCurrent", a.cuCtxSetCurrent);
  need("cuCtxPushCurrent_v2", a.cuCtxPushCurrent);
  need("cuCtxPopCurrent_v2", a.cuCtxPopCurrent);
  need("cuStreamGetCtx", a.cuStreamGetCtx);
  need("cuStreamSynchronize", a.cuStreamSynchronize);
  need("cuEventCreate", a.cuEventCreate);
  need("cuEventRecord", a.cuEventRecord);
  need("cuEventSynchronize", a.cuEventSynchronize);
  need("cuEventQuery", a.cuEventQuery);
  need("cuEventDestroy_v2", a.cuEventDestroy);
  need("cuMemHostAlloc", a.cuMemHostAlloc);
  need("cuMemFreeHost", a.cuMemFreeHost);
  need("cuMemGetInfo_v2", a.cuMemGetInfo);
  // cuEventElapsedTime_v2 (driver API 12.8, what cuda.h 12.8+ maps the name to), else the
  // original; both have the same signature and meaning for pyinfer's use.
  if (!resolve_symbol(s.library, "cuEventElapsedTime_v2", a.cuEventElapsedTime)) {
    need("cuEventElapsedTime", a.cuEventElapsedTime);
  }
  if (!missing.empty()) {
    s.reason = "the NVIDIA driver's libcuda.so.1 lacks " + missing +
               ": the driver is too old for pyinfer, update it";
    return s;
  }
  const CUresult init = a.cuInit(0);
  if (init != kCudaSuccess) {
    s.reason = "the NVIDIA driver failed to initialise: cuInit failed: " + cuda_error_text(a, init);
    if (init == kCudaErrorNoDevice) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      s.reason += visible != nullptr ? std::string("; CUDA_VISIBLE_DEVICES=\"") + visible + "\""
                                     : std::string("; no NVIDIA GPU is visible to this process");
    }
    return s;
  }
  int count = 0;
  const CUresult counted = a.cuDeviceGetCount(&count);
  if (counted != kCudaSuccess) {
    s.reason = "cuDeviceGetCount failed: " + cuda_error_text(a, counted);
    return s;
  }
  if (count <= 0) {
    s.reason = "no CUDA device: the driver is loaded but reports 0 devices";
    return s;
  }
  s.device_count = count;
  s.available = true;
  return s;
}

/// The process's driver state; the first call loads the driver (dlopen + cuInit: tens to
/// hundreds of milliseconds with a GPU). Thread-safe (initialised once, then read-only).
inline const DriverState& driver_state() {
  static const DriverState state = load_driver();
  return state;
}

/// The driver's entry points. @throws CudaUnavailable with the reason when CUDA cannot be used.
inline const DriverApi& require_driver() {
  const DriverState& s = driver_state();
  if (!s.available) PYINFER_THROW(CudaUnavailable(s.reason));
  return s.api;
}

/// Throws for a failed driver call: OutOfMemory for CUDA_ERROR_OUT_OF_MEMORY, CudaError (with
/// the call's name, the error's name and description) for anything else.
[[noreturn]] inline void throw_cuda_error(CUresult result, const char* call) {
  const std::string message =
      std::string(call) + " failed: " + cuda_error_text(driver_state().api, result);
  if (result == kCudaErrorOutOfMemory) PYINFER_THROW(OutOfMemory(message));
  PYINFER_THROW(CudaError(result, message));
}

/// Checks a driver call's result (see throw_cuda_error()).
inline void check(CUresult result, const char* call) {
  if (result != kCudaSuccess) throw_cuda_error(result, call);
}

/// @throws InvalidArgument unless 0 <= device < the number of devices (CUDA must be available).
inline void check_device(int device) {
  const DriverState& s = driver_state();
  if (device < 0 || device >= s.device_count) {
    PYINFER_THROW(InvalidArgument("CUDA device " + std::to_string(device) +
                                  " does not exist: this process sees " +
                                  std::to_string(s.device_count) + " CUDA device(s)"));
  }
}

/// The primary context of `device`, retained at the first call and kept until the process
/// exits (as the CUDA runtime does: releasing it could destroy a context torch still uses).
/// The first call per device may create the context (hundreds of milliseconds and some device
/// memory). Thread-safe. @throws CudaUnavailable, InvalidArgument (bad device), CudaError.
inline CUcontext primary_context(int device) {
  const DriverApi& api = require_driver();
  check_device(device);
  static std::mutex mutex;
  // Leaked on purpose: no driver call may run from a static destructor at exit.
  static auto* contexts = new std::vector<CUcontext>();
  std::lock_guard<std::mutex> lock(mutex);
  if (contexts->empty())
    contexts->assign(static_cast<std::size_t>(driver_state().device_count), nullptr);
  CUcontext& ctx = (*contexts)[static_cast<std::size_t>(device)];
  if (ctx == nullptr) {
    CUdevice dev = 0;
    check(api.cuDeviceGet(&dev, device), "cuDeviceGet");
    CUcontext retained = nullptr;
    check(api.cuDevicePrimaryCtxRetain(&retained, dev), "cuDevicePrimaryCtxRetain");
    ctx = retained;
  }
  return ctx;
}

/// Makes `ctx` the calling thread's current context for the lifetime of this object (pushes it
/// unless it already is current, pops it on destruction), leaving the caller's context as it
/// was. Per thread, like the driver's context stack; do not share an instance between threads.
class ScopedContext {
 public:
  /// @throws CudaError when the driver refuses.
  explicit ScopedContext(CUcontext ctx) : api_(driver_state().api) {
    CUcontext current = nullptr;
    check(api_.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
    if (current != ctx) {
      check(api_.cuCtxPushCurrent(ctx), "cuCtxPushCurrent_v2");
      pushed_ = true;
    }
  }
  /// Never throws: for destructors, which must not fail; `ok()` says whether `ctx` is current.
  ScopedContext(CUcontext ctx, std::nothrow_t) noexcept : api_(driver_state().api) {
    CUcontext current = nullptr;
    if (api_.cuCtxGetCurrent == nullptr || api_.cuCtxGetCurrent(&current) != kCudaSuccess) return;
    if (current == ctx) {
      ok_ = true;
    } else if (api_.cuCtxPushCurrent(ctx) == kCudaSuccess) {
      pushed_ = ok_ = true;
    }
  }
  ~ScopedContext() {
    if (pushed_) {
      CUcontext popped = nullptr;
      api_.cuCtxPopCurrent(&popped);
    }
  }
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

  bool ok() const noexcept { return ok_ || pushed_; }

 private:
  const DriverApi& api_;
  bool pushed_ = false;
  bool ok_ = false;
};

/// The driver's handle for a stream given as an integer.
inline CUstream to_stream(std::uintptr_t handle) noexcept {
  return reinterpret_cast<CUstream>(handle);
}

/// The context that work on `stream` runs in, for creating events that can be recorded on it:
/// the primary context of `device` for the special streams (0, 1, 2), else the stream's own
/// context (cuStreamGetCtx). `stream` must be a valid stream handle or one of the special
/// values: the driver does not detect every invalid handle. Thread-safe.
/// @throws CudaUnavailable, InvalidArgument (bad device), CudaError.
inline CUcontext stream_context(std::uintptr_t stream, int device) {
  const CUcontext primary = primary_context(device);
  if (stream <= kLastSpecialStream) return primary;
  ScopedContext scope(primary);
  CUcontext ctx = nullptr;
  check(driver_state().api.cuStreamGetCtx(to_stream(stream), &ctx), "cuStreamGetCtx");
  return ctx != nullptr ? ctx : primary;
}

}  // namespace detail

inline bool cuda_available() noexcept {
  PYINFER_TRY { return detail::driver_state().available; }
  PYINFER_CATCH(...) {  // std::bad_alloc while building the state
    return false;
  }
}

inline std::string cuda_unavailable_reason() { return detail::driver_state().reason; }

inline int cuda_driver_version() {
  const detail::DriverState& s = detail::driver_state();
  if (s.library == nullptr || s.api.cuDriverGetVersion == nullptr) {
    PYINFER_THROW(CudaUnavailable(s.reason));
  }
  int version = 0;
  detail::check(s.api.cuDriverGetVersion(&version), "cuDriverGetVersion");
  return version;
}

inline int cuda_device_count() noexcept {
  PYINFER_TRY { return detail::driver_state().device_count; }
  PYINFER_CATCH(...) { return 0; }
}

inline std::string cuda_device_name(int index) {
  const detail::DriverApi& api = detail::require_driver();
  detail::check_device(index);
  detail::CUdevice dev = 0;
  detail::check(api.cuDeviceGet(&dev, index), "cuDeviceGet");
  char name[256] = {};
  detail::check(api.cuDeviceGetName(name, static_cast<int>(sizeof(name) - 1), dev),
                "cuDeviceGetName");
  return name;
}

inline std::size_t cuda_device_total_memory(int index) {
  const detail::DriverApi& api = detail::require_driver();
  detail::check_device(index);
  detail::CUdevice dev = 0;
  detail::check(api.cuDeviceGet(&dev, index), "cuDeviceGet");
  std::size_t bytes = 0;
  detail::check(api.cuDeviceTotalMem(&bytes, dev), "cuDeviceTotalMem_v2");
  return bytes;
}

inline std::pair<std::size_t, std::size_t> cuda_mem_get_info(int index) {
  const detail::DriverApi& api = detail::require_driver();
  detail::ScopedContext scope(detail::primary_context(index));
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  detail::check(api.cuMemGetInfo(&free_bytes, &total_bytes), "cuMemGetInfo_v2");
  return {free_bytes, total_bytes};
}

}  // namespace pyinfer
