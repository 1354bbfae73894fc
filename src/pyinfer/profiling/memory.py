"""The memory pass: peak memory of a few calls, measured apart from any timing.

On the CPU, the process's peak resident memory over its resident size before the calls; on
CUDA, torch's allocator statistics, TensorFlow's own peak, or (ONNX Runtime) the growth of the
device-wide used memory; device-wide used and total memory come from NVML, else the driver.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

from pyinfer import _core
from pyinfer.backends.base import Model
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
        free, total = _core.cuda_mem_get_info(index)
    except Exception as exc:
        logger.warning("cannot read device memory of cuda:%d: %s", index, exc)
        return None, None
    return total - free, total


def measure_cpu(model: Model, run: Callable[[], None], runs: int) -> MemoryStats:
    """Peak resident memory of ``runs`` calls of ``run`` over the resident size before them."""
    release_free_heap()
    baseline = _core.rss_bytes()
    method = _core.reset_peak_rss()
    for _ in range(runs):
        run()
    peak = _core.peak_rss_bytes()
    return MemoryStats(
        parameter_bytes=model.parameter_bytes,
        peak_activation_bytes=max(peak - baseline, 0),
        activation_method=f"peak RSS over the pre-run RSS across {runs} calls ({method})",
        runs=runs,
        process_peak_rss_bytes=peak,
    )


def measure_cuda(model: Model, run: Callable[[], None], runs: int) -> MemoryStats:
    """Memory of ``runs`` calls of ``run`` on the model's CUDA device (see the module doc)."""
    index = model.device.index
    allocated = reserved = tf_peak = activation = None
    torch = sys.modules.get("torch") if model.framework == "torch" else None
    tf = sys.modules.get("tensorflow") if model.framework == "tensorflow" else None
    model.synchronize()
    used_before, _ = device_memory(index)
    if torch is not None:
        device = torch.device(str(model.device))
        baseline = int(torch.cuda.memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(runs):
            run()
        activation = int(torch.cuda.max_memory_allocated(device)) - baseline
        allocated = int(torch.cuda.memory_allocated(device))
        reserved = int(torch.cuda.memory_reserved(device))
        method = f"torch peak allocated over the post-load allocated, {runs} calls"
    elif tf is not None:
        name = f"GPU:{index}"
        try:
            tf.config.experimental.reset_memory_stats(name)
            current = int(tf.config.experimental.get_memory_info(name)["current"])
        except Exception as exc:
            logger.info("TensorFlow reports no GPU memory statistics: %s", exc)
            current = None
        for _ in range(runs):
            run()
        if current is not None:
            tf_peak = int(tf.config.experimental.get_memory_info(name)["peak"])
            activation = tf_peak - current
            method = f"TensorFlow peak over its use before the calls, {runs} calls"
        else:
            method = "unavailable: TensorFlow reports no GPU memory statistics"
    else:
        for _ in range(runs):
            run()
        method = f"growth of device-wide used memory over {runs} calls (runtime arena)"
    used, total = device_memory(index)
    if activation is None and torch is None and tf is None:
        activation = None if used is None or used_before is None else max(used - used_before, 0)
    return MemoryStats(
        parameter_bytes=model.parameter_bytes,
        peak_activation_bytes=activation,
        activation_method=method,
        runs=runs,
        gpu_allocated_bytes=allocated,
        gpu_reserved_bytes=reserved,
        device_used_bytes=used,
        device_total_bytes=total,
        tf_peak_bytes=tf_peak,
    )
