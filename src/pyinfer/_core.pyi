"""Type stub of pyinfer._core, the native core (see pyinfer.core for the documentation)."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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

# ---- process memory -----------------------------------------------------------------------

def rss_bytes() -> int: ...
def reset_peak_rss() -> str: ...
def peak_rss_bytes() -> int: ...
def peak_rss_method() -> str: ...
def _force_peak_rss_sampling(on: bool) -> None: ...
