"""The quick-start demo: the native core timing real work, reported in the standard report layout.

The demo needs no framework: its "model" is a small multi-layer perceptron in numpy (real matrix
products, real memory traffic), and its report goes through the same formatter as the profiler's
(:func:`pyinfer.report.format_results`). The demo times its forward pass with the core's
timed loop, measures its peak memory with the core's peak-RSS reader, and also shows what the
timing method itself costs, so a user sees why the numbers can be trusted.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyinfer import core
from pyinfer.errors import InvalidArgumentError
from pyinfer.report.environment import cpu_model

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

_MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured; durations in nanoseconds, sizes in bytes."""

    model: str
    device: str
    input_shape: tuple[int, ...]
    iterations: int
    warmup: int
    latency: core.Summary
    parameter_bytes: int
    peak_rss_delta_bytes: int
    peak_rss_method: str
    clock: core.ClockInfo
    timer_overhead_ns: float
    python_loop_overhead_ns: float
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def throughput_fps(self) -> float:
        """Items per second: batch size over mean latency."""
        return self.input_shape[0] * 1e9 / self.latency.mean


def _mlp(batch_size: int, sizes: tuple[int, ...], seed: int) -> tuple[Callable[[], object], int]:
    import numpy as np  # the demo's workload; the core itself does not need numpy

    rng = np.random.default_rng(seed)
    weights = [
        (rng.standard_normal((n_in, n_out), dtype=np.float32) / np.sqrt(n_in)).astype(np.float32)
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    biases = [np.zeros(n_out, dtype=np.float32) for n_out in sizes[1:]]
    x = rng.standard_normal((batch_size, sizes[0]), dtype=np.float32)

    def forward() -> npt.NDArray[np.float32]:
        h = x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = h @ w + b
            if i < len(weights) - 1:
                np.maximum(h, 0.0, out=h)
        return h

    parameter_bytes = sum(w.nbytes for w in weights) + sum(b.nbytes for b in biases)
    return forward, parameter_bytes


def _python_loop_overhead_ns(iterations: int) -> float:
    """Median per-sample time of a hand-written perf_counter_ns loop around a no-op."""
    clock = time.perf_counter_ns
    samples = [0] * iterations

    def noop() -> None:
        return None

    for i in range(iterations):
        start = clock()
        noop()
        samples[i] = clock() - start
    samples.sort()
    return float(samples[iterations // 2])


def run_demo(
    iterations: int = 1000,
    warmup: int = 100,
    batch_size: int = 32,
    sizes: tuple[int, ...] = (784, 1024, 1024, 10),
    seed: int = 0,
) -> DemoResult:
    """Times a numpy MLP forward pass with the native core.

    Args:
        iterations: Timed forward passes.
        warmup: Untimed forward passes before them.
        batch_size: Rows per forward pass.
        sizes: Layer widths, input first.
        seed: Seed of the random weights and input.

    Returns:
        The measurements, ready for :func:`format_demo`.

    Raises:
        InvalidArgumentError: If ``iterations`` < 1, ``warmup`` < 0 or ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise InvalidArgumentError(f"sizes needs two or more positive widths: {sizes}")
    forward, parameter_bytes = _mlp(batch_size, sizes, seed)
    clock = core.clock_info()

    # Memory pass, apart from the timing pass so that reading memory cannot disturb timings.
    forward()
    baseline = core.rss_bytes()
    method = core.reset_peak_rss()
    forward()
    peak_delta = max(core.peak_rss_bytes() - baseline, 0)

    logger.info("timing %d iterations after %d warm-up", iterations, warmup)
    latency = core.time_calls(forward, iterations, warmup=warmup).summary()

    overhead = core.time_calls(lambda: None, 20_000, warmup=1_000).summary().percentile(50.0)
    return DemoResult(
        model="numpy MLP " + "-".join(str(s) for s in sizes) + " (float32)",
        device=f"CPU ({cpu_model()}, {os.cpu_count()} logical cores)",
        input_shape=(batch_size, sizes[0]),
        iterations=iterations,
        warmup=warmup,
        latency=latency,
        parameter_bytes=parameter_bytes,
        peak_rss_delta_bytes=peak_delta,
        peak_rss_method=method,
        clock=clock,
        timer_overhead_ns=overhead,
        python_loop_overhead_ns=_python_loop_overhead_ns(20_000),
    )


def format_demo(result: DemoResult) -> str:
    """Formats a demo result in the standard report layout, plus the timer's own cost."""
    from pyinfer.report import LatencyStats, format_results

    lines = format_results(
        model=result.model,
        device=result.device,
        input_shape=str(result.input_shape),
        iterations=result.iterations,
        warmup=result.warmup,
        stats=LatencyStats.from_summary(result.latency),
        memory=[
            ("Model Parameters", f"{result.parameter_bytes / _MB:.1f} MB"),
            (
                "Peak Activation",
                f"{result.peak_rss_delta_bytes / _MB:.1f} MB"
                f" (peak RSS over baseline, {result.peak_rss_method})",
            ),
        ],
        throughput_fps=result.throughput_fps,
    )
    lines += [
        "",
        "Timing method:",
        f"  Clock: {result.clock.timed_loop_clock},"
        f" {result.clock.timed_loop_read_cost_ns:.1f} ns per read",
        "  Median sample of a no-op call (call + timer bias):",
        f"    pyinfer.time_calls:          {result.timer_overhead_ns:5.0f} ns",
        f"    Python perf_counter_ns loop: {result.python_loop_overhead_ns:5.0f} ns",
    ]
    return "\n".join(lines)
