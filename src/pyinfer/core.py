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

Errors are the classes of :mod:`pyinfer.errors`: a bad argument raises
:class:`~pyinfer.errors.InvalidArgumentError` (a ``ValueError``).
"""

from __future__ import annotations

from pyinfer._core import (
    ClockInfo,
    LatencyRecorder,
    Summary,
    clock_info,
    now_ns,
    peak_rss_bytes,
    peak_rss_method,
    reset_peak_rss,
    rss_bytes,
    summarize,
    time_calls,
)

#: Percentile ranks reported when none are asked for.
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

__all__ = [
    "DEFAULT_PERCENTILES",
    "ClockInfo",
    "LatencyRecorder",
    "Summary",
    "clock_info",
    "now_ns",
    "peak_rss_bytes",
    "peak_rss_method",
    "reset_peak_rss",
    "rss_bytes",
    "summarize",
    "time_calls",
]
