// pyinfer's version: PYINFER_VERSION_MAJOR, _MINOR, _PATCH and PYINFER_VERSION_STRING.
//
// The one version is pyproject.toml's. An installed copy (pyinfer.get_include(), the pyinfer
// CMake package) reads the header CMake generated from it, pyinfer/detail/version_generated.hpp;
// a source checkout, which has no generated header, falls back to the numbers below, which
// tests/test_headers.py keeps equal to pyproject.toml's version.
#pragma once

#include "pyinfer/detail/config.hpp"

#if __has_include("pyinfer/detail/version_generated.hpp")
#include "pyinfer/detail/version_generated.hpp"
#else
#define PYINFER_VERSION_MAJOR 0
#define PYINFER_VERSION_MINOR 1
#define PYINFER_VERSION_PATCH 0
#define PYINFER_VERSION_STRING "0.1.0"
#endif
