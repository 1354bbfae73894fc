"""The memory pass: peak memory of a few calls, measured apart from any timing.

On the CPU, the process's peak resident memory over its resident size before the calls; on
CUDA, the framework's own statistics where the model offers them (torch's allocator,
TensorFlow's peak), else (ONNX Runtime) the growth of the device-wide used memory.
Device-wide used and total memory come from NVML, else the driver.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

from pyinfer import core
from pyinfer.backends.base import DeviceMemoryReading, Model
from pyinfer.profiling.gpu import nvml_index
from pyinfer.report import MemoryStats

__all__ = ["device_memory", "measure_cpu", "measure_cuda", "release_free_heap"]

logger = logging.getLogger(__name__)


def release_free_heap() -> None:
    """Gives the C heap's free pages back to the system (glibc's ``malloc_trim``), if it can.

    glibc keeps freed memory resident for reuse (below its trim threshold, which grows to 64 MB
    after large blocks are freed). A memory pass that follows other work would see the calls
    reuse those pages and the resident size not grow: a peak activation of 0 MB. Trimmed first,
    what the calls allocate shows in the resident size again.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)


def device_memory(index: int) -> tuple[int | None, int | None]:
    """Device-wide (used, total) bytes: NVML where installed, else the driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(
                pynvml.nvmlDeviceGetHandleByIndex(nvml_index(index))
            )
            return int(info.used), int(info.total)
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        logger.debug("NVML memory query failed (%s); asking the driver", exc)
    try:
        free, total = core.cuda_mem_get_info(index)
    except Exception as exc:
        logger.warning("cannot read device memory of cuda:%d: %s", index, exc)
        return None, None
    return total - free, total


def measure_cpu(model: Model, run: Callable[[], None], runs: int) -> MemoryStats:
    """Peak resident memory of ``runs`` calls of ``run`` over the resident size before them."""
    release_free_heap()
    baseline = core.rss_bytes()
    method = core.reset_peak_rss()
    for _ in range(runs):
        run()
    peak = core.peak_rss_bytes()
    return MemoryStats(
        parameter_bytes=model.parameter_bytes,
        peak_activation_bytes=max(peak - baseline, 0),
        activation_method=f"peak RSS over the pre-run RSS across {runs} calls ({method})",
        runs=runs,
        process_peak_rss_bytes=peak,
    )


def measure_cuda(model: Model, run: Callable[[], None], runs: int) -> MemoryStats:
    """Memory of ``runs`` calls of ``run`` on the model's CUDA device (see the module doc).

    The framework's allocator statistics where the model offers them
    (:meth:`~pyinfer.backends.base.Model.measure_device_memory`), else the growth of the
    device-wide used memory over the calls.
    """
    index = model.device.index
    model.synchronize()
    used_before, _ = device_memory(index)
    reading = model.measure_device_memory(run, runs)
    if reading is None:
        for _ in range(runs):
            run()
    used, total = device_memory(index)
    if reading is None:
        reading = DeviceMemoryReading(
            activation_bytes=None
            if used is None or used_before is None
            else max(used - used_before, 0),
            allocated_bytes=None,
            reserved_bytes=None,
            framework_peak_bytes=None,
            method=f"growth of device-wide used memory over {runs} calls (runtime arena)",
        )
    return MemoryStats(
        parameter_bytes=model.parameter_bytes,
        peak_activation_bytes=reading.activation_bytes,
        activation_method=reading.method,
        runs=runs,
        gpu_allocated_bytes=reading.allocated_bytes,
        gpu_reserved_bytes=reading.reserved_bytes,
        device_used_bytes=used,
        device_total_bytes=total,
        tf_peak_bytes=reading.framework_peak_bytes,
    )
