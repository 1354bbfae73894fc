"""The measurements a report holds: latency, throughput, GPU use, batch points, memory, cold start.

Plain frozen dataclasses with the derived figures users read (std as % of the mean, FPS, RPS);
they render nothing themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pyinfer import core
from pyinfer.errors import InvalidArgumentError
from pyinfer.report.energy import EnergyReading
from pyinfer.report.formatting import format_macs
from pyinfer.report.stats import percentile_supported

#: The percentiles every latency summary holds.
_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, in milliseconds.

    Percentiles use linear interpolation between closest ranks (``numpy.percentile``'s default).
    Std is the sample standard deviation (``ddof=1``).

    Attributes:
        count: Number of samples.
        mean_ms: Mean.
        median_ms: Median (p50).
        std_ms: Standard deviation.
        min_ms: Fastest sample.
        max_ms: Slowest sample.
        p90_ms: 90th percentile.
        p95_ms: 95th percentile.
        p99_ms: 99th percentile.
        p999_ms: 99.9th percentile.
    """

    count: int
    mean_ms: float
    median_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float

    @classmethod
    def from_samples_ns(cls, samples_ns: npt.ArrayLike) -> LatencyStats:
        """Summarises durations given in nanoseconds (with the native core's ``summarize``).

        Raises:
            InvalidArgumentError: If there are no samples or one is not finite.
        """
        arr = np.ascontiguousarray(samples_ns, dtype=np.float64)
        if arr.size == 0:
            raise InvalidArgumentError("latency statistics of no samples")
        return cls.from_summary(core.summarize(arr, _PERCENTILES, ddof=1 if arr.size > 1 else 0))

    @classmethod
    def from_summary(cls, summary: core.Summary) -> LatencyStats:
        """Converts a core summary in nanoseconds that holds the five reported percentiles.

        Raises:
            InvalidArgumentError: If the summary lacks one of P50, P90, P95, P99 and P99.9.
        """
        pct = summary.percentiles
        missing = [p for p in _PERCENTILES if p not in pct]
        if missing:
            raise InvalidArgumentError(
                f"the summary lacks percentile(s) {', '.join(f'{p:g}' for p in missing)}"
            )
        return cls(
            count=summary.count,
            mean_ms=summary.mean / 1e6,
            median_ms=pct[50.0] / 1e6,
            std_ms=summary.std / 1e6,
            min_ms=summary.min / 1e6,
            max_ms=summary.max / 1e6,
            p90_ms=pct[90.0] / 1e6,
            p95_ms=pct[95.0] / 1e6,
            p99_ms=pct[99.0] / 1e6,
            p999_ms=pct[99.9] / 1e6,
        )

    @property
    def std_percent(self) -> float:
        """Std as a percentage of the mean (the "latency variance" users ask to keep under 5%)."""
        return 100.0 * self.std_ms / self.mean_ms if self.mean_ms > 0 else math.inf

    def supported(self, percentile: float) -> bool:
        """Whether the sample count supports ``percentile`` (see :mod:`pyinfer.report.stats`)."""
        return percentile_supported(percentile, self.count)

    @property
    def unsupported_percentiles(self) -> tuple[str, ...]:
        """Labels of the reported percentiles resting on too few samples (``"P99"``...)."""
        return tuple(
            _percentile_label(p) for p in (90.0, 95.0, 99.0, 99.9) if not self.supported(p)
        )


def _percentile_label(p: float) -> str:
    return f"P{p:g}"


@dataclass(frozen=True)
class LatencyMeasurement:
    """One latency measurement: statistics, raw samples and how they were taken.

    Attributes:
        batch_size: Items per call.
        stats: The statistics of the samples.
        samples_ns: Every timed call's duration in nanoseconds, in order.
        warmup_iterations: Untimed calls made before (after the first inference).
        warmup_settled: Whether the warm-up median settled (``None``: not asked).
        stable: Whether the stability measure met its target when the run stopped.
        stability_reason: Why the run stopped, with the figures.
        stability_metric: ``"cv"`` or ``"median_ci"``.
        stability_value: The measure at the stop (a fraction).
        timing_method: How calls were timed (``"host timed loop"``, ``"cuda-events"``...).
        wall_s: Wall time of the timed calls (GPU: each chunk up to its synchronisation).
        host_mean_ms: On a GPU, the host's end-to-end time per call (wall time including
            the synchronisation, over the calls); ``None`` on the CPU, where it is the latency.
    """

    batch_size: int
    stats: LatencyStats
    samples_ns: tuple[float, ...]
    warmup_iterations: int
    warmup_settled: bool | None
    stable: bool
    stability_reason: str
    stability_metric: str
    stability_value: float
    timing_method: str
    wall_s: float
    host_mean_ms: float | None = None

    @property
    def iterations(self) -> int:
        """Timed calls."""
        return self.stats.count

    @property
    def throughput_fps(self) -> float:
        """Items per second over the measurement's wall time."""
        return self.batch_size * self.iterations / self.wall_s if self.wall_s > 0 else math.nan


@dataclass(frozen=True)
class GpuUtilization:
    """GPU utilisation sampled through NVML during a throughput run.

    Attributes:
        mean_percent: Mean of the samples (``None`` when unavailable).
        max_percent: Highest sample.
        samples: Number of samples.
        unavailable: Why there are none (``""`` when there are).
    """

    mean_percent: float | None = None
    max_percent: float | None = None
    samples: int = 0
    unavailable: str = ""

    def text(self) -> str:
        """One phrase: ``"mean 93.0%, max 100.0% (25 samples)"`` or ``"unavailable: ..."``."""
        if self.mean_percent is None or self.max_percent is None:
            return f"unavailable: {self.unavailable}"
        return (
            f"mean {self.mean_percent:.1f}%, max {self.max_percent:.1f}% ({self.samples} samples)"
        )


@dataclass(frozen=True)
class Throughput:
    """A throughput run: back-to-back calls, wall time around all of them.

    Attributes:
        batch_size: Items per call.
        calls: Calls made.
        wall_s: Wall time of the run, including the final synchronisation on a GPU.
        gpu_utilization: NVML samples taken during the run.
        energy: The energy counters read around the run's timed calls (RAPL on the CPU, NVML
            on the model's GPU), or why they could not be; ``None`` when not read (turned off
            with ``ProfilerSettings(energy=False)``, or a report older than schema 1.3).
    """

    batch_size: int
    calls: int
    wall_s: float
    gpu_utilization: GpuUtilization = field(default_factory=GpuUtilization)
    energy: EnergyReading | None = None

    @property
    def items(self) -> int:
        """Items processed."""
        return self.batch_size * self.calls

    @property
    def fps(self) -> float:
        """Items per second (frames per second for image models)."""
        return self.items / self.wall_s

    @property
    def rps(self) -> float:
        """Batches (requests) per second."""
        return self.calls / self.wall_s


@dataclass(frozen=True)
class BatchPoint:
    """One batch size of a sweep.

    Attributes:
        batch_size: Items per call.
        latency_mean_ms: Mean latency of one call (``None`` when the point failed).
        latency_median_ms: Median latency.
        latency_p95_ms: 95th percentile.
        throughput_fps: Items per second over the wall time of the latency run.
        stable: Whether its latency run met the stability target.
        error: Why the point failed (``None`` when it did not).
        out_of_memory: Whether it failed for lack of memory (the sweep stops there).
        samples: How many timed calls its figures come from (``None``: not recorded).
        interrupted: Whether Ctrl-C stopped its measurement: the figures are those of the
            calls timed before (``samples`` of them), and the point is not stable.
        run_medians_ms: With repetitions, each run's median (the point's figures are the
            medians of the runs'); empty for one run.
        reproducibility: With repetitions, the fraction of the median a repeat is expected
            within (see :class:`~pyinfer.report.repetitions.Repetitions`); ``None`` for one run.
    """

    batch_size: int
    latency_mean_ms: float | None = None
    latency_median_ms: float | None = None
    latency_p95_ms: float | None = None
    throughput_fps: float | None = None
    stable: bool | None = None
    error: str | None = None
    out_of_memory: bool = False
    samples: int | None = None
    interrupted: bool = False
    run_medians_ms: tuple[float, ...] = ()
    reproducibility: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the point was measured."""
        return self.error is None


@dataclass(frozen=True)
class MemoryStats:
    """Memory a model takes, measured in a pass apart from the timing.

    Attributes:
        parameter_bytes: Bytes of the weights.
        peak_activation_bytes: Peak memory the runs took above the baseline before them
            (method in ``activation_method``); ``None`` when it could not be measured.
        activation_method: How the peak was measured.
        runs: Calls made in the memory pass.
        process_peak_rss_bytes: Peak resident memory of the whole process during the pass.
        gpu_allocated_bytes: torch: memory held by tensors after the pass.
        gpu_reserved_bytes: torch: memory held by its caching allocator after the pass.
        device_used_bytes: Memory used on the device by every process (NVML or the driver).
        device_total_bytes: The device's memory.
        tf_peak_bytes: TensorFlow's own peak on the GPU, where it reports one.
    """

    parameter_bytes: int
    peak_activation_bytes: int | None
    activation_method: str
    runs: int
    process_peak_rss_bytes: int | None = None
    gpu_allocated_bytes: int | None = None
    gpu_reserved_bytes: int | None = None
    device_used_bytes: int | None = None
    device_total_bytes: int | None = None
    tf_peak_bytes: int | None = None

    @property
    def total(self) -> tuple[str, int | None]:
        """The third memory line of the report: its label and value.

        On a GPU, "Total GPU": torch's reserved memory where known, else the device-wide used
        memory. On the CPU, the process's peak resident memory, labelled so.
        """
        if self.gpu_reserved_bytes is not None:
            return "Total GPU", self.gpu_reserved_bytes
        if self.device_used_bytes is not None:
            return "Total GPU", self.device_used_bytes
        return "Process Peak RSS", self.process_peak_rss_bytes


@dataclass(frozen=True)
class ColdStart:
    """Costs paid once, before the steady state the latency describes.

    Attributes:
        load_time_s: Seconds ``load_model`` took (framework import excluded); ``None`` when
            unknown.
        first_inference_ms: The very first call's duration, before any warm-up.
    """

    load_time_s: float | None = None
    first_inference_ms: float | None = None


@dataclass(frozen=True)
class ArithmeticSummary:
    """The arithmetic of one call, beside its latency (filled by ``pyinfer profile``).

    Attributes:
        macs: Multiply-accumulates of one call at the report's batch size.
        method: How they were counted (:func:`pyinfer.count_macs`'s method).
    """

    macs: int
    method: str

    @property
    def flops(self) -> int:
        """FLOPs of one call: ``2 x macs``."""
        return 2 * self.macs

    def line(self, median_ms: float) -> str:
        """``4.089 G MACs (8.18 GFLOP, FLOPs = 2 x MACs) per call, 211.3 GFLOP/s achieved``."""
        rate = self.flops / (median_ms * 1e-3) / 1e9 if median_ms > 0 else math.nan
        return (
            f"{format_macs(self.macs)} per call, {rate:.1f} GFLOP/s achieved at the median latency"
        )
