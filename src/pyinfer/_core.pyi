"""Type stub of pyinfer._core, the native core (see pyinfer.core for the documentation)."""

import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__version__: str

# ---- clock and timed loop -----------------------------------------------------------------

def now_ns() -> int:
    """Monotonic clock (CLOCK_MONOTONIC) in nanoseconds since an unspecified epoch."""

class ClockInfo:
    """What now_ns() reads and what one read costs."""

    @property
    def source(self) -> str: ...
    @property
    def kernel_clocksource(self) -> str: ...
    @property
    def resolution_ns(self) -> float: ...
    @property
    def read_cost_ns(self) -> float: ...
    @property
    def min_step_ns(self) -> float: ...
    @property
    def timed_loop_clock(self) -> str: ...
    @property
    def timed_loop_read_cost_ns(self) -> float: ...
    def to_dict(self) -> dict[str, Any]: ...

def clock_info() -> ClockInfo:
    """Describes the clock and measures the cost of one read (takes about a millisecond)."""

def time_calls(fn: Callable[[], object], iterations: int, warmup: int = 0) -> LatencyRecorder:
    """Calls ``fn()`` ``warmup`` times untimed, then ``iterations`` times, from C++.

    Returns a LatencyRecorder holding exactly ``iterations`` durations in nanoseconds. The clock
    is read right before and right after each call, so each sample carries one clock read of bias
    (``clock_info().read_cost_ns``). If ``fn`` raises (or Ctrl-C arrives), that exception
    propagates with the samples taken before it attached as ``partial_recorder``.

    Raises:
        InvalidArgumentError: ``fn`` is not callable, ``iterations < 1`` or ``warmup < 0``.
    """

def _call_loop_ns(fn: Callable[[], object], n: int) -> int:
    """Benchmark aid: wall time of ``n`` untimed back-to-back calls of ``fn``, in nanoseconds."""

# ---- summaries and recorders --------------------------------------------------------------

class Summary:
    """Count, mean, std, min, max and percentiles, in the samples' unit."""

    @property
    def count(self) -> int: ...
    @property
    def mean(self) -> float: ...
    @property
    def std(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def exact(self) -> bool: ...
    @property
    def relative_error(self) -> float: ...
    @property
    def percentiles(self) -> dict[float, float]: ...
    @property
    def std_percent(self) -> float: ...
    def percentile(self, p: float) -> float: ...
    def to_dict(self) -> dict[str, Any]: ...

def summarize(
    values: npt.ArrayLike,
    percentiles: Sequence[float] = (50.0, 90.0, 95.0, 99.0, 99.9),
    ddof: int = 0,
) -> Summary:
    """Summary of an array; a C-contiguous float64 array is read in place without a copy.

    Raises:
        InvalidArgumentError: empty input, a non-finite value, a rank outside [0, 100], or
            ``ddof`` not below the count.
    """

class LatencyRecorder:
    """Thread-safe collection of durations in nanoseconds, exact or as a histogram."""

    def __init__(
        self,
        *,
        histogram: bool = False,
        significant_digits: int = 3,
        highest_trackable_ns: int = 3_600_000_000_000,
    ) -> None: ...
    def record(self, ns: float) -> None: ...
    def record_many(self, values: npt.ArrayLike) -> None: ...
    @property
    def count(self) -> int: ...
    def __len__(self) -> int: ...
    @property
    def is_histogram(self) -> bool: ...
    @property
    def significant_digits(self) -> int: ...
    @property
    def highest_trackable_ns(self) -> int: ...
    @property
    def relative_error(self) -> float: ...
    @property
    def memory_bytes(self) -> int: ...
    def samples(self) -> npt.NDArray[np.float64]: ...
    def summary(
        self, percentiles: Sequence[float] = (50.0, 90.0, 95.0, 99.0, 99.9), ddof: int = 0
    ) -> Summary: ...
    def merge(self, other: LatencyRecorder) -> None: ...
    def clear(self) -> None: ...
    def histogram_buckets(self) -> npt.NDArray[np.uint64]: ...

# ---- open-loop arrivals --------------------------------------------------------------------

def constant_arrivals(qps: float, count: int) -> list[int]:
    """Offsets in nanoseconds of ``count`` requests at a constant rate: i / qps."""

def poisson_arrivals(qps: float, count: int, seed: int) -> list[int]:
    """Offsets in nanoseconds of ``count`` Poisson arrivals of rate ``qps`` (first at 0)."""

class ArrivalScheduler:
    """Issues a schedule's requests on time from a native thread to workers in ``next()``."""

    def __init__(self, offsets_ns: Sequence[int], spin_ns: int = 200_000) -> None: ...
    def start(self, start_ns: int) -> None: ...
    def next(self, deadline_ns: int = -1) -> tuple[int, int, int] | None: ...
    def stop(self) -> None: ...
    @property
    def finished(self) -> bool: ...
    @property
    def issued(self) -> int: ...
    @property
    def queued(self) -> int: ...
    def __len__(self) -> int: ...

# ---- process memory -----------------------------------------------------------------------

def rss_bytes() -> int: ...
def reset_peak_rss() -> str: ...
def peak_rss_bytes() -> int: ...
def peak_rss_method() -> str: ...
def _force_peak_rss_sampling(on: bool) -> None: ...

# ---- CUDA (driver loaded at first use, never at import) -----------------------------------

class _HasCudaStream(Protocol):
    @property
    def cuda_stream(self) -> int: ...

_Stream: TypeAlias = int | _HasCudaStream

def cuda_available() -> bool:
    """True when CUDA can be used: libcuda.so.1 loads, cuInit succeeds and a device is visible.

    The first call loads the driver (tens to hundreds of milliseconds). Never raises.
    """

def cuda_unavailable_reason() -> str:
    """Why CUDA is unavailable (e.g. ``"libcuda.so.1 not found: ..."``), or ``""``."""

def cuda_driver_version() -> int:
    """CUDA version the driver supports: ``1000 * major + 10 * minor`` (13000 for 13.0).

    Raises:
        CudaUnavailableError: No NVIDIA driver library on this machine.
    """

def cuda_device_count() -> int:
    """Number of CUDA devices visible to this process; 0 when CUDA is unavailable."""

def cuda_device_name(index: int = 0) -> str:
    """Name of CUDA device ``index`` (e.g. ``"NVIDIA H200"``).

    Raises:
        CudaUnavailableError: CUDA is unavailable.
        InvalidArgumentError: No such device.
    """

def cuda_device_total_memory(index: int = 0) -> int:
    """Total memory of CUDA device ``index``, in bytes (creates no context).

    Raises:
        CudaUnavailableError: CUDA is unavailable.
        InvalidArgumentError: No such device.
    """

def cuda_mem_get_info(index: int = 0) -> tuple[int, int]:
    """``(free, total)`` memory of CUDA device ``index`` in bytes, device-wide.

    ``total - free`` is the memory used by every process on the device. Runs in the device's
    primary context (the one torch and ONNX Runtime use), creating it if nobody has.

    Raises:
        CudaUnavailableError: CUDA is unavailable.
        InvalidArgumentError: No such device.
    """

class CudaEventTimer:
    """GPU durations from CUDA event pairs recorded on one stream.

    ``start()`` and ``stop()`` record events and return at once; ``elapsed_ms()`` waits once
    (for the last stop event) and returns every pending pair's GPU time in milliseconds, after
    which the event pairs are reused. ``stream`` is a stream handle as an int (0: the legacy
    default stream; ``torch.cuda.current_stream().cuda_stream``), or an object with a
    ``cuda_stream`` attribute such as a ``torch.cuda.Stream``. The stream must outlive the timer's
    use of it. Events come from a pool of ``capacity`` pairs that grows as needed.

    Raises:
        CudaUnavailableError: CUDA is unavailable (the message says why).
        InvalidArgumentError: ``capacity < 1``, a bad stream value or no such device.
    """

    def __init__(self, stream: _Stream = 0, device: int = 0, capacity: int = 1024) -> None: ...
    def start(self) -> None:
        """Records a start event on the stream (does not wait for the GPU).

        Raises:
            InvalidArgumentError: The previous ``start()`` has no ``stop()`` yet.
        """

    def stop(self) -> None:
        """Records the stop event matching the last ``start()`` (does not wait for the GPU).

        Raises:
            InvalidArgumentError: No ``start()`` to match.
        """

    def elapsed_ms(self) -> npt.NDArray[np.float64]:
        """Waits once for the last stop event; returns each pending pair's GPU time in ms.

        The GIL is released while waiting. Empty, without waiting, when nothing is pending.

        Raises:
            InvalidArgumentError: A ``start()`` has no ``stop()``.
            CudaError: The GPU work failed.
        """

    def reset(self) -> None:
        """Forgets the pending pairs and an open ``start()`` without waiting."""

    def reserve(self, pairs: int) -> None:
        """Creates events now so that the pool holds at least ``pairs`` pairs."""

    @property
    def pending(self) -> int:
        """Completed pairs waiting for ``elapsed_ms()``."""

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""

    @property
    def capacity(self) -> int:
        """Event pairs in the pool."""

    @property
    def stream(self) -> int: ...
    @property
    def device(self) -> int: ...
    def time_calls(
        self, fn: Callable[[], object], iterations: int, warmup: int = 0
    ) -> tuple[npt.NDArray[np.float64], LatencyRecorder]:
        """Times ``fn()`` ``iterations`` times on the GPU and on the host, from C++.

        Each timed call is bracketed by a start and a stop event on the timer's stream, and by
        host clock reads. Nothing waits for the GPU inside the loop: one synchronisation at the
        end resolves every GPU time. ``warmup`` untimed calls come first.

        Returns:
            ``(gpu_ms, host)``: the GPU time of each call in milliseconds, and a
            LatencyRecorder with each call's host duration in nanoseconds.

        Raises:
            InvalidArgumentError: ``fn`` not callable, ``iterations < 1``, ``warmup < 0``, or
                pairs pending on the timer.
            Exception: Whatever ``fn`` raises, with the host samples before it attached as
                ``partial_recorder`` (the GPU times are discarded).
        """

@final
class PinnedBuffer:
    """Page-locked host memory, exposed zero-copy through the buffer protocol.

    ``np.frombuffer(buf, np.float32)`` and ``torch.from_numpy(...)`` view the memory without a
    copy (writable, 1-D unsigned bytes underneath); host-to-device copies from it can run
    asynchronously. Its contents start uninitialised. Without CUDA it raises
    CudaUnavailableError, unless ``allow_pageable=True``: ordinary 4096-aligned memory is used
    and ``pinned`` is False. ``close()`` (or leaving a ``with`` block) frees it now; it refuses
    while views are alive. Do not free memory the GPU may still be copying from.

    Raises:
        InvalidArgumentError: ``nbytes < 1`` or no such device.
        CudaUnavailableError: CUDA is unavailable and ``allow_pageable`` is False.
        OutOfMemoryError: The memory could not be allocated (or page-locked).
    """

    def __init__(self, nbytes: int, *, device: int = 0, allow_pageable: bool = False) -> None: ...
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...
        def __release_buffer__(self, view: memoryview, /) -> None: ...

    @property
    def nbytes(self) -> int:
        """Size in bytes."""

    @property
    def pinned(self) -> bool:
        """True when page-locked; False for the pageable fallback."""

    @property
    def device(self) -> int: ...
    @property
    def address(self) -> int:
        """Address of the first byte.

        Raises:
            InvalidArgumentError: The buffer is closed.
        """

    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Frees the memory now (a ring slot drops its share). Closing twice is allowed.

        Raises:
            BufferInUseError: Views (memoryview, numpy arrays, tensors) of it are alive.
        """

    def numpy(
        self, dtype: npt.DTypeLike = "uint8", shape: int | Sequence[int] | None = None
    ) -> npt.NDArray[Any]:
        """A writable zero-copy numpy array over the buffer.

        All of it as a 1-D array of ``dtype`` without ``shape``; else the first
        ``prod(shape)`` elements, reshaped.

        Raises:
            ValueError: The buffer is too small for ``shape`` or not a multiple of the itemsize.
            InvalidArgumentError: The buffer is closed.
        """

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

class PinnedRing:
    """``slots`` pinned host buffers in one allocation, for double-buffered uploads.

    Fill slot ``i = ring.acquire()`` (through ``ring.slot(i)``), enqueue its asynchronous copy on
    a stream, then ``ring.release(i, stream)``; the next ``acquire()`` that returns ``i`` first
    waits (GIL released) until that copy has finished. Slot starts are 4096-byte aligned. With
    ``allow_pageable=True`` and no CUDA, the memory is ordinary and there is nothing to wait for.

    Raises:
        InvalidArgumentError: ``slot_nbytes < 1``, ``slots < 1`` or no such device.
        CudaUnavailableError: CUDA is unavailable and ``allow_pageable`` is False.
        OutOfMemoryError: The memory could not be allocated.
    """

    def __init__(
        self, slot_nbytes: int, slots: int = 2, *, device: int = 0, allow_pageable: bool = False
    ) -> None: ...
    @property
    def slots(self) -> int: ...
    @property
    def slot_nbytes(self) -> int: ...
    @property
    def slot_stride(self) -> int:
        """Bytes between slot starts (``slot_nbytes`` rounded up to 4096)."""

    @property
    def pinned(self) -> bool: ...
    @property
    def device(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def slot(self, index: int) -> PinnedBuffer:
        """Slot ``index`` as a PinnedBuffer sharing the ring's memory (the same object each time).

        Raises:
            InvalidArgumentError: ``index`` out of range, or the ring is closed.
        """

    def acquire(self) -> int:
        """The next slot index, round-robin, once the copy released from it has finished."""

    def release(self, index: int, stream: _Stream = 0) -> None:
        """Records (on ``stream``, without waiting) that slot ``index``'s copy was enqueued."""

    def close(self) -> None:
        """Waits for the copies in flight, closes every slot and frees the memory.

        Raises:
            BufferInUseError: A slot has live views (nothing is closed then).
        """

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...
