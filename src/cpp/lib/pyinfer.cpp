// The compiled part of pyinfer's C++ library (libpyinfer_core.a, the pyinfer::pyinfer CMake
// target): the definitions that a program built with PYINFER_SEPARATE_COMPILATION does not see in
// the headers (the PYINFER_COMPILED functions, see pyinfer/detail/config.hpp). Compiled once
// here, they cost the program's own files nothing.
#ifndef PYINFER_SEPARATE_COMPILATION
#define PYINFER_SEPARATE_COMPILATION 1
#endif
#define PYINFER_DETAIL_BUILDING_LIBRARY 1

#include "pyinfer/pyinfer.hpp"
