// Umbrella header: everything in pyinfer's public C++ core.
//
// Header-only, C++17, no Python and no CUDA headers needed. Link Threads and ${CMAKE_DL_LIBS}
// (the pyinfer::headers CMake target does it for you). Or precompiled: the pyinfer::pyinfer
// target (PYINFER_SEPARATE_COMPILATION, see pyinfer/detail/config.hpp) compiles much faster.
#pragma once

#include "pyinfer/detail/config.hpp"

#include "pyinfer/arrivals.hpp"
#include "pyinfer/benchmark.hpp"
#include "pyinfer/clock.hpp"
#include "pyinfer/cuda_driver.hpp"
#include "pyinfer/cuda_timer.hpp"
#include "pyinfer/do_not_optimize.hpp"
#include "pyinfer/errors.hpp"
#include "pyinfer/histogram.hpp"
#include "pyinfer/pinned_buffer.hpp"
#include "pyinfer/process_memory.hpp"
#include "pyinfer/recorder.hpp"
#include "pyinfer/summary.hpp"
#include "pyinfer/timed_loop.hpp"
#include "pyinfer/version.hpp"
