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

// Header-only, or separately compiled. By default every definition is in the headers (a plain
// -I is all a program needs). Defining PYINFER_SEPARATE_COMPILATION (the pyinfer::pyinfer CMake
// target does it) keeps the heaviest ones (summarize() and the benchmark harness's reporting)
// out of them: they are compiled once, into the pyinfer library (src/cpp/lib/pyinfer.cpp), which
// the program then links. The library throws C++ exceptions: -fno-exceptions programs use the
// headers alone.
#if defined(PYINFER_SEPARATE_COMPILATION)
#define PYINFER_HEADER_ONLY 0
#define PYINFER_COMPILED
#else
#define PYINFER_HEADER_ONLY 1
#define PYINFER_COMPILED inline
#endif
// Whether the definitions of the PYINFER_COMPILED functions are seen: in a header-only build, and
// in the library's own source (src/cpp/lib/pyinfer.cpp).
#if PYINFER_HEADER_ONLY || defined(PYINFER_DETAIL_BUILDING_LIBRARY)
#define PYINFER_DETAIL_DEFINE_COMPILED 1
#else
#define PYINFER_DETAIL_DEFINE_COMPILED 0
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
