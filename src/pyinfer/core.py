"""The native core: clock, timed loop, recorders, summaries, process memory and CUDA timing.

Everything here is implemented in C++ (``pyinfer._core``, built from ``src/cpp/``) and re-exported
with its documentation and types (see ``_core.pyi``). The same code is available to C++ extensions
as header-only library: ``#include <pyinfer/recorder.hpp>`` with ``pyinfer.get_include()``.

Clock and timed loop
    :func:`now_ns` reads the monotonic clock in nanoseconds. :func:`clock_info` says which clock it
    is, its resolution and the measured cost of one read. :func:`time_calls` calls a Python
    callable from C++ ``iterations`` times and returns a :class:`LatencyRecorder` with one duration
    per call: only one clock read of bias per sample and far less overhead than a Python loop.

Recorders and summaries
    :class:`LatencyRecorder` collects durations (thread-safe) exactly, or as an HDR-style
    log-linear histogram with bounded memory (``LatencyRecorder(histogram=True)``).
    ``summary()`` and :func:`summarize` give count, mean, std, min, max and any percentiles in one
    call. Percentiles follow one definition everywhere: linear interpolation between closest
    ranks, exactly ``numpy.percentile(x, p, method="linear")``.

Process memory
    :func:`rss_bytes`, and :func:`reset_peak_rss` / :func:`peak_rss_bytes` around a region to read
    its peak resident memory (Linux ``clear_refs`` + ``VmHWM``, or a sampling thread where the
    kernel lacks it; :func:`peak_rss_method` says which).

CUDA (no build or import dependency)
    The NVIDIA driver (``libcuda.so.1``) is loaded at the first CUDA call, never at import, so
    the same wheel runs with or without a GPU and beside any torch or ONNX Runtime CUDA version.
    :func:`cuda_available` (never raises) and :func:`cuda_unavailable_reason` say whether it can
    be used; :func:`cuda_driver_version`, :func:`cuda_device_count`, :func:`cuda_device_name`,
    :func:`cuda_device_total_memory` and :func:`cuda_mem_get_info` (device-wide free and total
    memory) describe the devices. :class:`CudaEventTimer` times GPU work with CUDA event pairs
    recorded on a stream handle given as an int (``torch.cuda.current_stream().cuda_stream``)
    and resolves them with one synchronisation into per-pair milliseconds; its ``time_calls``
    times a callable on the GPU and the host at once. :class:`PinnedBuffer` is page-locked host
    memory exposed zero-copy through the buffer protocol (numpy, ``torch.from_numpy``) for fast
    asynchronous uploads, and :class:`PinnedRing` a ring of such slots for double-buffered
    uploads. Everything uses the device's primary context, the one torch and ONNX Runtime use,
    and leaves the calling thread's current context alone. Without a usable driver these raise
    :class:`~pyinfer.errors.CudaUnavailableError` with the reason (``PinnedBuffer`` and
    ``PinnedRing`` fall back to ordinary memory with ``allow_pageable=True``).

Open-loop arrivals
    :func:`constant_arrivals` and :func:`poisson_arrivals` give the offsets (nanoseconds) of a
    request schedule; :class:`ArrivalScheduler` issues them on time from a native thread that
    holds no GIL, to workers that wait in ``next()`` (GIL released) for
    ``(index, scheduled_ns, issued_ns)``. :mod:`pyinfer.load` builds load tests on them.

Errors are the classes of :mod:`pyinfer.errors`: a bad argument raises
:class:`~pyinfer.errors.InvalidArgumentError` (a ``ValueError``).
"""

from __future__ import annotations

from pyinfer._core import (
    ArrivalScheduler,
    ClockInfo,
    CudaEventTimer,
    LatencyRecorder,
    PinnedBuffer,
    PinnedRing,
    Summary,
    __version__,
    clock_info,
    constant_arrivals,
    cuda_available,
    cuda_device_count,
    cuda_device_name,
    cuda_device_total_memory,
    cuda_driver_version,
    cuda_mem_get_info,
    cuda_unavailable_reason,
    now_ns,
    peak_rss_bytes,
    peak_rss_method,
    poisson_arrivals,
    reset_peak_rss,
    rss_bytes,
    summarize,
    time_calls,
)

#: Percentile ranks reported when none are asked for.
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

__all__ = [
    "DEFAULT_PERCENTILES",
    "ArrivalScheduler",
    "ClockInfo",
    "CudaEventTimer",
    "LatencyRecorder",
    "PinnedBuffer",
    "PinnedRing",
    "Summary",
    "__version__",
    "clock_info",
    "constant_arrivals",
    "cuda_available",
    "cuda_device_count",
    "cuda_device_name",
    "cuda_device_total_memory",
    "cuda_driver_version",
    "cuda_mem_get_info",
    "cuda_unavailable_reason",
    "now_ns",
    "peak_rss_bytes",
    "peak_rss_method",
    "poisson_arrivals",
    "reset_peak_rss",
    "rss_bytes",
    "summarize",
    "time_calls",
]
