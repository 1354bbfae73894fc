// What every pyinfer header needs first: the C++17 check, and how errors are raised with and
// without C++ exceptions. Internal to pyinfer: every public header includes it.
#pragma once

#if defined(_MSVC_LANG) && _MSVC_LANG > __cplusplus
#define PYINFER_DETAIL_CPLUSPLUS _MSVC_LANG
#else
#define PYINFER_DETAIL_CPLUSPLUS __cplusplus
#endif
#if PYINFER_DETAIL_CPLUSPLUS < 201703L
#error \
    "pyinfer needs C++17 or later: compile with -std=c++17 (or newer), or in CMake link pyinfer::headers, which asks for cxx_std_17"
#endif

#include <cstdio>
#include <cstdlib>
#include <exception>

// Errors are C++ exceptions (pyinfer/errors.hpp). Built without them (-fno-exceptions), the
// same errors print "pyinfer: <message>" on stderr and abort the program instead.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define PYINFER_HAS_EXCEPTIONS 1
#define PYINFER_THROW(...) throw __VA_ARGS__
#define PYINFER_TRY try
#define PYINFER_CATCH(...) catch (__VA_ARGS__)
#define PYINFER_RETHROW throw
#else
#define PYINFER_HAS_EXCEPTIONS 0
#define PYINFER_THROW(...) ::pyinfer::detail::abort_with(__VA_ARGS__)
#define PYINFER_TRY if (true)
#define PYINFER_CATCH(...) else if (false)
#define PYINFER_RETHROW std::abort()
#endif

namespace pyinfer {
namespace detail {
/// Where an error goes without exceptions: prints "pyinfer: <what>" on stderr, then aborts.
[[noreturn]] inline void abort_with(const std::exception& error) noexcept {
  std::fprintf(stderr, "pyinfer: %s\n", error.what());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail
}  // namespace pyinfer
