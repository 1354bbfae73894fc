"""Profiling results and how they are shown: text, JSON, CSV, Markdown, tables, plots, comparison.

:class:`ProfileReport` is what :meth:`pyinfer.PerformanceProfiler.profile` returns. It holds the
latency statistics (with the raw samples, so two reports can be compared), throughput, memory,
cold start, an optional batch-size curve and the environment, and renders them:

* :meth:`ProfileReport.to_text`: the specification's layout, line for line, followed by a
  separate ``Details`` block (P90, P99.9, stability verdict, percentiles resting on too few
  samples, timing method, cold start, GPU utilisation, knee);
* :meth:`ProfileReport.to_json` / :meth:`ProfileReport.from_json`: an exact round trip, with
  :data:`SCHEMA_VERSION`; a report from a newer major version is refused with a clear error;
* :meth:`ProfileReport.to_csv`, :meth:`ProfileReport.to_markdown`;
* :func:`comparison_table` (format x latency x throughput x memory, the specification's box
  table) and :meth:`BatchCurve.to_table`;
* :meth:`BatchCurve.plot` and :meth:`ProfileReport.plot_latency` (PNG, matplotlib);
* :func:`compare`: per-metric change and a Mann-Whitney U test on the raw samples, so a
  regression can be told from noise.

Files are written atomically (:func:`write_atomic`): a temporary file in the same folder,
flushed, then renamed over the target, so a reader never sees half a report.

Durations are stored in milliseconds (``format_ms``) or seconds (``_s``) and raw samples in
nanoseconds (``_ns``), sizes in bytes; units are chosen only when displaying.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import tempfile
import time
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pyinfer import _core
from pyinfer._environment import Environment
from pyinfer._stats import (
    mann_whitney_u,
    median_ci_relative,
    min_samples_for_percentile,
    percentile_supported,
)
from pyinfer.errors import InvalidArgumentError

__all__ = [
    "MIN_MEANINGFUL_CHANGE",
    "SCHEMA_VERSION",
    "SIGNIFICANCE_LEVEL",
    "BatchCurve",
    "BatchPoint",
    "ColdStart",
    "Comparison",
    "Environment",
    "GpuUtilization",
    "JsonRecord",
    "LatencyMeasurement",
    "LatencyStats",
    "MemoryStats",
    "MetricChange",
    "ProfileReport",
    "SweepReport",
    "Throughput",
    "compare",
    "comparison_table",
    "format_results",
    "reports_to_csv",
    "write_atomic",
]

logger = logging.getLogger(__name__)

#: Version of the JSON layout: the major number changes when a field is removed or changes
#: meaning (older pyinfer refuses such files), the minor when fields are added (ignored by
#: older readers).
SCHEMA_VERSION = "1.0"

#: p-value under which :func:`compare` calls a difference significant.
SIGNIFICANCE_LEVEL = 0.05
#: Smallest change of the median that :func:`compare` reports as faster or slower, even when
#: significant: with thousands of samples a 0.3% shift is "significant" yet below what the
#: profiler claims to resolve (2% at the median), so it is called no significant change.
MIN_MEANINGFUL_CHANGE = 0.02

MB = 1024.0 * 1024.0
_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_FORMAT_LABELS = {
    "pytorch": "PyTorch",
    "pytorch-legacy": "PyTorch",
    "pickle": "PyTorch",
    "torchscript": "TorchScript",
    "torch-export": "torch.export",
    "onnx": "ONNX",
    "keras": "Keras",
    "keras-h5": "Keras (h5)",
    "saved-model": "SavedModel",
    "tflite": "TFLite",
}
_PRECISIONS = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "float64": "FP64"}


def format_ms(value: float) -> str:
    """A duration in ms with 2 decimals, or 4 below 0.1 ms so small models keep their digits."""
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.4f}"


def format_short(value: float) -> str:
    """A table figure: 1 decimal (``42.5``), 0 from 1000, 3 significant digits below 1."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def _mb(value: float) -> str:
    return f"{value / MB:.1f}"


# ---- results ----------------------------------------------------------------------------------


R = typing.TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """JSON for a frozen dataclass of plain fields: an exact round trip, typed errors.

    A subclass names itself in messages (``JSON_WHAT``) and at the root of a field path
    (``JSON_ROOT``), may refuse documents of another kind or schema (``_check_json``) and may add
    derived keys in ``to_dict`` (ignored when reading). Non-finite floats are written as the
    strings ``"inf"``, ``"-inf"`` and ``"nan"``, so the JSON stays strict.
    """

    JSON_WHAT: typing.ClassVar[str] = "record"
    JSON_ROOT: typing.ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        encoded = encode_json(self)
        assert isinstance(encoded, dict)
        return encoded

    def to_json(self, *, indent: int | None = 2) -> str:
        """The record as JSON (strict: no NaN or Infinity literals); an exact round trip."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def _check_json(cls, data: Any) -> None:
        """Refuses a document of another kind or schema (by default, none is refused)."""

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """Rebuilds a record from :meth:`to_dict`'s output.

        Raises:
            InvalidArgumentError: If it is of another kind or schema, or a field is missing or
                of the wrong type (the message names the field).
        """
        cls._check_json(data)
        decoded = _decode(cls, data, cls.JSON_ROOT)
        assert isinstance(decoded, cls)
        return decoded

    @classmethod
    def from_json(cls: type[R], text: str | bytes) -> R:
        """Parses :meth:`to_json`'s output.

        Raises:
            InvalidArgumentError: If the text is not JSON, or as for :meth:`from_dict`.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
            raise InvalidArgumentError(f"{cls.JSON_WHAT} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Reads a record saved as JSON.

        Raises:
            InvalidArgumentError: If the file cannot be read, or as for :meth:`from_json`; the
                message names the file.
        """
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read the {cls.JSON_WHAT} {p}: {exc.strerror or exc}"
            ) from exc
        try:
            return cls.from_json(text)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{p}: {exc}") from exc


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
        return cls.from_summary(_core.summarize(arr, _PERCENTILES, ddof=1 if arr.size > 1 else 0))

    @classmethod
    def from_summary(cls, summary: _core.Summary) -> LatencyStats:
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
        """Std as a percentage of the mean (the specification's "latency variance")."""
        return 100.0 * self.std_ms / self.mean_ms if self.mean_ms > 0 else math.inf

    def supported(self, percentile: float) -> bool:
        """Whether the sample count supports ``percentile`` (see ``_stats``)."""
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
    """

    batch_size: int
    calls: int
    wall_s: float
    gpu_utilization: GpuUtilization = field(default_factory=GpuUtilization)

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

    @property
    def ok(self) -> bool:
        """Whether the point was measured."""
        return self.error is None


@dataclass(frozen=True)
class BatchCurve(JsonRecord):
    """Latency and throughput against batch size.

    The knee is the smallest batch reaching 90% of the best throughput (``_stats.KNEE_FRACTION``).
    The best batch under a latency budget is the one with the highest throughput among those
    whose P95 latency is within the budget (a budget is a promise about slow calls, so the
    tail is checked, not the mean).

    Attributes:
        points: One per batch size tried, in the order tried.
        knee_batch_size: The knee (``None`` when no point was measured).
        latency_budget_ms: The budget asked for, if any.
        best_batch_size: The best batch under the budget (or overall without one).
        best_reason: How the best batch was chosen, or why there is none.
    """

    points: tuple[BatchPoint, ...]
    knee_batch_size: int | None = None
    latency_budget_ms: float | None = None
    best_batch_size: int | None = None
    best_reason: str = ""

    @property
    def measured(self) -> tuple[BatchPoint, ...]:
        """The points that were measured."""
        return tuple(p for p in self.points if p.ok)

    def to_table(self, *, mark_unstable: bool = False) -> str:
        """The box table of the specification's batch section.

        The specification's fourth column ("Images/Batch") holds throughput times batch size,
        which measures nothing; this table gives batches per second (RPS) there instead. A
        failed or interrupted point is marked ``[N]`` in its last cell, and its note (the
        error, or how many calls an interrupted point's figures come from) is printed under
        the table, so a long error does not widen the table.

        Args:
            mark_unstable: Put ``~`` after the latency of a point that did not meet its
                stability target (the caller explains the mark under the table).
        """
        header = ("Batch Size", "Latency (ms)", "Throughput (FPS)", "Batches/s (RPS)")
        rows: list[tuple[str, ...]] = []
        notes: list[str] = []
        for p in self.points:
            if p.ok and p.latency_mean_ms is not None and p.throughput_fps is not None:
                rps = f"{p.throughput_fps / p.batch_size:.1f}"
                if p.interrupted:
                    taken = f"{p.samples} calls" if p.samples is not None else "the calls"
                    notes.append(f"interrupted: figures from {taken} timed before, not stable")
                    rps += f" [{len(notes)}]"
                latency = format_ms(p.latency_mean_ms) + (
                    "~" if mark_unstable and p.stable is False else ""
                )
                row = (str(p.batch_size), latency, f"{p.throughput_fps:.1f}", rps)
                rows.append(row)
            else:
                notes.append(f"batch {p.batch_size} failed: {one_line(p.error)}")
                rows.append((str(p.batch_size), "-", "-", f"failed [{len(notes)}]"))
        table = box_table(header, rows, widths=(11, 14, 18, 16), center_first=True)
        return "\n".join([table, *(f"[{i}] {n}" for i, n in enumerate(notes, 1))])

    def to_csv(self) -> str:
        """One row per batch size."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = [f.name for f in fields(BatchPoint)]
        writer.writerow(names)
        for p in self.points:
            writer.writerow(["" if getattr(p, n) is None else getattr(p, n) for n in names])
        return out.getvalue()

    JSON_WHAT = "batch curve"
    JSON_ROOT = "batch curve"

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Writes throughput and latency against batch size as a PNG.

        Args:
            path: The PNG file to write (atomically).
            title: The figure's title.

        Returns:
            The path written.

        Raises:
            FrameworkNotInstalledError: If matplotlib is missing (``pyinfer[plot]``).
            InvalidArgumentError: If no point was measured.
        """
        from pyinfer._plots import plot_batch_curve

        return plot_batch_curve(self, Path(path), title=title)


@dataclass(frozen=True)
class SweepReport(JsonRecord):
    """A batch sweep with what was measured and where: what ``pyinfer sweep --json`` writes.

    Attributes:
        model: The model's name.
        format: Its format (``"onnx"``, ``"torchscript"``...).
        framework: The runtime (``"torch"``, ``"onnxruntime"``...).
        device: ``"cpu"`` or ``"cuda:N"``.
        device_name: The device as users read it: ``"CPU (AMD EPYC, 2 cores)"``.
        inputs: Each input's declared shape and dtype (``"(batch, 3, 224, 224) float32"``);
            each point of the curve runs its own batch size.
        settings: The profiler settings the points were measured with
            (:class:`pyinfer.ProfilerSettings` as a dict, ``input_dims`` included).
        batch_curve: The curve: one point per batch size, the knee and the best batch.
        environment: The machine and software.
        interrupted: Whether Ctrl-C ended the sweep (the curve holds what was measured).
        schema_version: The JSON layout's version (:data:`SCHEMA_VERSION`).
    """

    model: str
    format: str
    framework: str
    device: str
    device_name: str
    inputs: dict[str, str]
    settings: dict[str, Any]
    batch_curve: BatchCurve
    environment: Environment
    interrupted: bool = False
    schema_version: str = SCHEMA_VERSION

    JSON_WHAT = "sweep report"
    JSON_ROOT = "sweep"

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(data, cls.JSON_WHAT, "re-run the sweep")


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


def _precision(dtypes: dict[str, str]) -> str:
    for dtype in dtypes.values():
        if dtype in _PRECISIONS:
            return _PRECISIONS[dtype]
    return ""


@dataclass(frozen=True)
class ProfileReport(JsonRecord):
    """Everything one profiling run measured, and where.

    Attributes:
        model: The model's name.
        format: Its format (``"onnx"``, ``"torchscript"``...).
        framework: The runtime (``"torch"``, ``"onnxruntime"``...).
        device: ``"cpu"`` or ``"cuda:N"``.
        device_name: The device as users read it: ``"CUDA (NVIDIA H200)"``.
        batch_size: Items per call.
        input_shapes: Shape of each input as run.
        input_dtypes: Dtype of each input.
        latency: The latency measurement.
        throughput: The throughput run, if made.
        memory: The memory pass, if made.
        cold_start: Load and first-inference times.
        batch_curve: The batch-size sweep, if made.
        environment: The machine and software.
        schema_version: The JSON layout's version.
    """

    model: str
    format: str
    framework: str
    device: str
    device_name: str
    batch_size: int
    input_shapes: dict[str, tuple[int, ...]]
    input_dtypes: dict[str, str]
    latency: LatencyMeasurement
    environment: Environment
    throughput: Throughput | None = None
    memory: MemoryStats | None = None
    cold_start: ColdStart = field(default_factory=ColdStart)
    batch_curve: BatchCurve | None = None
    schema_version: str = SCHEMA_VERSION

    # -- verdict ---------------------------------------------------------------------------

    @property
    def stable(self) -> bool:
        """Whether the latency measurement met its stability target (the CLI's exit code)."""
        return self.latency.stable

    @property
    def stability_reason(self) -> str:
        """Why the measurement stopped, with the figures."""
        return self.latency.stability_reason

    @property
    def label(self) -> str:
        """The row name in comparison tables: ``"ONNX (FP32)"``."""
        name = _FORMAT_LABELS.get(self.format, self.format)
        precision = _precision(self.input_dtypes)
        return f"{name} ({precision})" if precision else name

    @property
    def throughput_fps(self) -> float:
        """Items per second: the throughput run's, or the latency run's without one."""
        if self.throughput is not None:
            return self.throughput.fps
        return self.latency.throughput_fps

    @property
    def input_shape_text(self) -> str:
        """The ``Input Shape`` line's value: one shape, or ``name (shape)`` pairs."""
        if len(self.input_shapes) == 1:
            return str(tuple(next(iter(self.input_shapes.values()))))
        return ", ".join(f"{k} {tuple(v)}" for k, v in self.input_shapes.items())

    # -- text ------------------------------------------------------------------------------

    def to_text(self) -> str:
        """The report in the specification's layout, then a separate ``Details`` block."""
        memory = None
        if self.memory is not None:
            m = self.memory
            total_label, total_value = m.total
            memory = [
                ("Model Parameters", f"{_mb(m.parameter_bytes)} MB"),
                ("Peak Activation", _mb_or_na(m.peak_activation_bytes)),
                (total_label, _mb_or_na(total_value)),
            ]
        lines = format_results(
            model=self.model,
            device=self.device_name,
            input_shape=self.input_shape_text,
            iterations=self.latency.stats.count,
            warmup=self.latency.warmup_iterations,
            stats=self.latency.stats,
            memory=memory,
            throughput_fps=self.throughput_fps,
        )
        return "\n".join([*lines, "", *self._details()])

    def _details(self) -> list[str]:
        lat, s = self.latency, self.latency.stats
        out = ["Details:", "--------"]
        out.append(f"  Stability: {lat.stability_reason}")
        ci = median_ci_relative(np.asarray(lat.samples_ns)) if lat.samples_ns else math.inf
        out.append(f"  Median 95% CI: +-{ci * 100:.2f}%   Std/mean: {s.std_percent:.1f}%")
        out.append(f"  P90:    {format_ms(s.p90_ms)} ms")
        out.append(f"  P99.9:  {format_ms(s.p999_ms)} ms")
        unsupported = s.unsupported_percentiles
        if unsupported:
            needs = ", ".join(
                f"{label} needs {min_samples_for_percentile(float(label[1:])):,}"
                for label in unsupported
            )
            out.append(
                f"  Too few samples for {', '.join(unsupported)} ({s.count:,} taken; {needs}):"
                " read them as rough"
            )
        out.append(f"  Timing: {lat.timing_method}")
        if lat.host_mean_ms is not None:
            out.append(f"  Host end-to-end: {format_ms(lat.host_mean_ms)} ms per call")
        warm = f"  Warm-up: {lat.warmup_iterations} calls"
        if lat.warmup_settled is not None:
            warm += ", settled" if lat.warmup_settled else ", did NOT settle"
        out.append(warm)
        cold = self.cold_start
        out.append(
            "  Cold start: load "
            + ("n/a" if cold.load_time_s is None else f"{cold.load_time_s:.3f} s")
            + ", first inference "
            + (
                "n/a"
                if cold.first_inference_ms is None
                else f"{format_ms(cold.first_inference_ms)} ms"
            )
        )
        if self.throughput is not None:
            t = self.throughput
            out.append(
                f"  Throughput run: {t.fps:.1f} items/s (FPS), {t.rps:.1f} batches/s (RPS), "
                f"batch {t.batch_size}, {t.calls} calls in {t.wall_s:.2f} s"
            )
            out.append(f"  GPU utilisation: {t.gpu_utilization.text()}")
        if self.memory is not None:
            out.append(f"  Peak activation method: {self.memory.activation_method}")
        if self.batch_curve is not None and self.batch_curve.knee_batch_size is not None:
            out.append(f"  Knee of the batch curve: batch {self.batch_curve.knee_batch_size}")
            out.append(f"  Best batch: {self.batch_curve.best_reason}")
        out += [f"  Warning: {line}" for line in self.environment.concurrent_measurements]
        return out

    # -- JSON ------------------------------------------------------------------------------

    JSON_WHAT = "profile report"
    JSON_ROOT = "report"

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(data, cls.JSON_WHAT, "re-run the profile")
        latency = data.get("latency")
        stats = latency.get("stats") if isinstance(latency, dict) else None
        samples = latency.get("samples_ns") if isinstance(latency, dict) else None
        count = stats.get("count") if isinstance(stats, dict) else None
        # Raw samples may be left out (an empty list), but never cut short: the statistics
        # would describe samples the report does not hold.
        held = len(samples) if isinstance(samples, list) else 0
        if held and isinstance(count, int) and held != count:
            raise InvalidArgumentError(
                f"report.latency.samples_ns holds {held} samples, but "
                f"report.latency.stats.count says {count}: the report is incomplete"
            )

    # -- CSV and Markdown -----------------------------------------------------------------

    def summary_row(self) -> dict[str, Any]:
        """The headline figures as one flat row (the CSV columns)."""
        s = self.latency.stats
        m = self.memory
        return {
            "model": self.model,
            "format": self.format,
            "framework": self.framework,
            "device": self.device,
            "batch_size": self.batch_size,
            "iterations": s.count,
            "warmup": self.latency.warmup_iterations,
            "mean_ms": s.mean_ms,
            "median_ms": s.median_ms,
            "std_ms": s.std_ms,
            "std_percent": s.std_percent,
            "min_ms": s.min_ms,
            "max_ms": s.max_ms,
            "p90_ms": s.p90_ms,
            "p95_ms": s.p95_ms,
            "p99_ms": s.p99_ms,
            "p999_ms": s.p999_ms,
            "throughput_fps": self.throughput_fps,
            "throughput_rps": self.throughput_fps / self.batch_size,
            "parameter_bytes": None if m is None else m.parameter_bytes,
            "peak_activation_bytes": None if m is None else m.peak_activation_bytes,
            "stable": self.stable,
            "timing_method": self.latency.timing_method,
        }

    def to_csv(self) -> str:
        """A header and one row of :meth:`summary_row`."""
        return reports_to_csv([self])

    def to_markdown(self) -> str:
        """The report as Markdown: a heading, a metrics table, the batch table if any."""
        s = self.latency.stats
        unsupported = s.unsupported_percentiles
        rough = f" (too few samples for {', '.join(unsupported)}: rough)" if unsupported else ""
        rows = [
            ("Device", self.device_name),
            ("Input shape", self.input_shape_text),
            ("Iterations", f"{s.count} ({self.latency.warmup_iterations} warmup)"),
            ("Mean", f"{format_ms(s.mean_ms)} ms"),
            ("Median", f"{format_ms(s.median_ms)} ms"),
            ("Std", f"{format_ms(s.std_ms)} ms ({s.std_percent:.1f}%)"),
            ("Min / Max", f"{format_ms(s.min_ms)} / {format_ms(s.max_ms)} ms"),
            ("P90 / P95 / P99 / P99.9", " / ".join(format_ms(v) for v in _tail(s)) + " ms" + rough),
            ("Throughput", f"{self.throughput_fps:.1f} FPS"),
        ]
        if self.memory is not None:
            rows.append(("Model parameters", f"{_mb(self.memory.parameter_bytes)} MB"))
            if self.memory.peak_activation_bytes is not None:
                rows.append(("Peak activation", f"{_mb(self.memory.peak_activation_bytes)} MB"))
        rows.append(("Stable", f"{'yes' if self.stable else 'NO'}: {self.stability_reason}"))
        lines = [f"## {self.model} ({self.label})", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {k} | {_md_cell(v)} |" for k, v in rows]
        if self.batch_curve is not None:
            lines += ["", "| Batch size | Latency (ms) | Throughput (FPS) |", "|---:|---:|---:|"]
            for p in self.batch_curve.points:
                if p.ok and p.latency_mean_ms is not None and p.throughput_fps is not None:
                    mark = " (interrupted, not stable)" if p.interrupted else ""
                    lines.append(
                        f"| {p.batch_size}{mark} | {format_ms(p.latency_mean_ms)} | "
                        f"{p.throughput_fps:.1f} |"
                    )
                else:
                    lines.append(f"| {p.batch_size} | failed: {_md_cell(p.error)} | |")
        return "\n".join(lines) + "\n"

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Writes the report atomically, in the format its suffix names.

        Args:
            path: The file: ``.json``, ``.txt``, ``.csv`` or ``.md``.
            format: ``"json"``, ``"text"``, ``"csv"`` or ``"markdown"``, overriding the suffix.

        Returns:
            The path written.

        Raises:
            InvalidArgumentError: If the format is unknown.
        """
        p = Path(path)
        kind = format or {".json": "json", ".txt": "text", ".csv": "csv", ".md": "markdown"}.get(
            p.suffix.lower(), ""
        )
        renderers = {
            "json": self.to_json,
            "text": self.to_text,
            "csv": self.to_csv,
            "markdown": self.to_markdown,
        }
        if kind not in renderers:
            raise InvalidArgumentError(
                f"cannot tell the report format of {p}: use a .json, .txt, .csv or .md suffix, "
                "or format='json'|'text'|'csv'|'markdown'"
            )
        return write_atomic(p, renderers[kind]())

    def plot_latency(self, path: str | Path) -> Path:
        """Writes the latency histogram and CDF of the raw samples as a PNG.

        Raises:
            FrameworkNotInstalledError: If matplotlib is missing (``pyinfer[plot]``).
            InvalidArgumentError: If the report holds no raw samples.
        """
        from pyinfer._plots import plot_latency

        return plot_latency(self, Path(path))


def one_line(text: str | None) -> str:
    """``text`` on one line (an exception's message may hold several), for a table cell."""
    return " ".join(str(text).split())


def _md_cell(text: str | None) -> str:
    """``text`` as one Markdown table cell: one line, ``|`` escaped."""
    return one_line(text).replace("|", "\\|")


def _mb_or_na(value: int | None) -> str:
    return "n/a" if value is None else f"{_mb(value)} MB"


def format_results(
    *,
    model: str,
    device: str,
    input_shape: str,
    iterations: int,
    warmup: int,
    stats: LatencyStats,
    memory: Sequence[tuple[str, str]] | None,
    throughput_fps: float,
) -> list[str]:
    """The specification's report layout, line for line (shared by reports and ``pyinfer demo``).

    Args:
        model: The ``Model:`` line.
        device: The ``Device:`` line.
        input_shape: The ``Input Shape:`` line.
        iterations: Timed calls.
        warmup: Warm-up calls.
        stats: The latency statistics.
        memory: ``(label, value)`` lines of the ``Memory Usage`` block, or ``None`` for none.
        throughput_fps: The ``Throughput:`` line.

    Returns:
        The lines, without newlines.
    """
    lines = [
        "Profiling Results:",
        "==================",
        f"Model: {model}",
        f"Device: {device}",
        f"Input Shape: {input_shape}",
        f"Iterations: {iterations} ({warmup} warmup)",
        "",
        "Latency Statistics:",
        f"  Mean:   {format_ms(stats.mean_ms)} ms",
        f"  Median: {format_ms(stats.median_ms)} ms",
        f"  Std:    {format_ms(stats.std_ms)} ms ({stats.std_percent:.1f}%)",
        f"  Min:    {format_ms(stats.min_ms)} ms",
        f"  Max:    {format_ms(stats.max_ms)} ms",
        f"  P95:    {format_ms(stats.p95_ms)} ms",
        f"  P99:    {format_ms(stats.p99_ms)} ms",
    ]
    if memory is not None:
        lines += ["", "Memory Usage:"]
        lines += [f"  {label + ':':<18}{value}" for label, value in memory]
    lines += ["", f"Throughput: {throughput_fps:.1f} FPS"]
    return lines


def _tail(s: LatencyStats) -> tuple[float, float, float, float]:
    return s.p90_ms, s.p95_ms, s.p99_ms, s.p999_ms


# ---- tables -----------------------------------------------------------------------------------


def box_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    *,
    center_first: bool = False,
) -> str:
    """Cells separated by ``│``, a ``─``/``┼`` rule under the header, as in the specification.

    Header cells are padded by one space on each side (none before the first); data cells are
    centred, except the first column's, left-aligned unless ``center_first``. Columns grow to
    fit their content.
    """
    last = len(header) - 1
    # A header needs one space after it (none before the first, none after the last).
    pad = [1] + [2] * (last - 1) + [1]
    width = [
        max(widths[i], len(header[i]) + pad[i], *(len(r[i]) + 2 for r in rows))
        for i in range(len(header))
    ]
    head = [header[0].ljust(width[0])]
    head += [f" {h} ".ljust(w) for h, w in zip(header[1:], width[1:], strict=True)]
    out = ["│".join(head).rstrip(), "┼".join("─" * w for w in width)]
    for row in rows:
        first = f"{row[0]:^{width[0]}}" if center_first else row[0].ljust(width[0])
        cells = [first] + [f"{c:^{w}}" for c, w in zip(row[1:], width[1:], strict=True)]
        out.append("│".join(cells).rstrip())
    return "\n".join(out)


def comparison_table(
    reports: Sequence[ProfileReport], *, labels: Sequence[str] | None = None
) -> str:
    """The specification's comparison table: one row per report.

    Latency is the mean, throughput the report's FPS, memory the parameters plus the peak
    activation in MB (the model's footprint while it runs).

    Args:
        reports: The reports, one row each.
        labels: Row names (default: each report's :attr:`ProfileReport.label`; where two
            reports share one, the device is added, then the model and batch size, so that no
            two rows read the same: ``"ONNX (FP32) cpu"``, ``"ONNX (FP32) cuda:0"``).

    Returns:
        The table, without a trailing newline.

    Raises:
        InvalidArgumentError: If there are no reports or the labels do not match them.
    """
    if not reports:
        raise InvalidArgumentError("comparison_table needs at least one report")
    if labels is not None and len(labels) != len(reports):
        raise InvalidArgumentError(f"{len(labels)} labels given for {len(reports)} reports")
    names = list(labels) if labels is not None else _row_labels(reports)
    rows = []
    for name, r in zip(names, reports, strict=True):
        m = r.memory
        memory = "-"
        if m is not None:
            megabytes = (m.parameter_bytes + (m.peak_activation_bytes or 0)) / MB
            memory = f"{megabytes:.0f}" if megabytes >= 10 else format_short(megabytes)
        rows.append(
            (name, format_short(r.latency.stats.mean_ms), f"{r.throughput_fps:.1f}", memory)
        )
    header = ("Model Format", "Latency (ms)", "Throughput (FPS)", "Memory (MB)")
    return box_table(header, rows, widths=(16, 14, 18, 12))


def _row_labels(reports: Sequence[ProfileReport]) -> list[str]:
    """Each report's label, made longer only where two rows would otherwise read the same."""
    names = [r.label for r in reports]
    for extra in (
        lambda r: r.device,
        lambda r: f"{r.model} b{r.batch_size}",
    ):
        if len(set(names)) == len(names):
            break
        names = [
            f"{name} {extra(r)}" if names.count(name) > 1 else name
            for name, r in zip(names, reports, strict=True)
        ]
    return names


def reports_to_csv(reports: Sequence[ProfileReport]) -> str:
    """One CSV row per report (:meth:`ProfileReport.summary_row`), with a header.

    Raises:
        InvalidArgumentError: If there are no reports.
    """
    if not reports:
        raise InvalidArgumentError("reports_to_csv needs at least one report")
    out = io.StringIO()
    rows = [r.summary_row() for r in reports]
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


# ---- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricChange:
    """One metric of two reports.

    Attributes:
        name: The metric (``"median"``, ``"throughput"``...).
        unit: Its unit.
        before: Value in the first report.
        after: Value in the second.
        change_percent: ``(after - before) / before * 100``.
        lower_is_better: Whether a decrease is an improvement.
    """

    name: str
    unit: str
    before: float
    after: float
    change_percent: float
    lower_is_better: bool


@dataclass(frozen=True)
class Comparison:
    """The difference between two reports.

    Attributes:
        changes: Per-metric changes.
        u_statistic: Mann-Whitney U of the first report's samples.
        p_value: Two-sided p-value of the U test on the raw latency samples.
        verdict: ``"faster"``, ``"slower"`` or ``"no significant change"`` (for the second
            report, relative to the first).
        notes: What makes the two less than like for like (different batch sizes), if anything.
    """

    changes: tuple[MetricChange, ...]
    u_statistic: float
    p_value: float
    verdict: str
    notes: tuple[str, ...] = ()

    def to_text(self) -> str:
        """A small table of the changes and the verdict."""
        lines = [f"{'metric':<16}{'before':>12}{'after':>12}{'change':>10}"]
        for c in self.changes:
            lines.append(
                f"{c.name + ' (' + c.unit + ')':<16}{c.before:>12.4g}{c.after:>12.4g}"
                f" {f'{c.change_percent:+.1f}%':>9}"
            )
        lines.append(f"Mann-Whitney U p-value: {self.p_value:.3g} -> {self.verdict}")
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def _change(name: str, unit: str, before: float, after: float, lower: bool) -> MetricChange:
    change = (after - before) / before * 100.0 if before else math.nan
    return MetricChange(name, unit, before, after, change, lower)


def compare(before: ProfileReport, after: ProfileReport) -> Comparison:
    """How ``after`` differs from ``before``, and whether the latency change is real.

    The raw latency samples of the two reports are compared with a two-sided Mann-Whitney U
    test. The verdict is ``"faster"`` or ``"slower"`` only when the p-value is under
    :data:`SIGNIFICANCE_LEVEL` *and* the median moved by at least :data:`MIN_MEANINGFUL_CHANGE`;
    otherwise ``"no significant change"``. Reports of different models or batch sizes are
    compared all the same, with a note saying so.

    Args:
        before: The reference report.
        after: The report to judge.

    Returns:
        The comparison.
    """
    a, b = before.latency.stats, after.latency.stats
    changes = [
        _change("mean", "ms", a.mean_ms, b.mean_ms, True),
        _change("median", "ms", a.median_ms, b.median_ms, True),
        _change("p95", "ms", a.p95_ms, b.p95_ms, True),
        _change("p99", "ms", a.p99_ms, b.p99_ms, True),
        _change("throughput", "FPS", before.throughput_fps, after.throughput_fps, False),
    ]
    if before.memory is not None and after.memory is not None:
        pa, pb = before.memory.peak_activation_bytes, after.memory.peak_activation_bytes
        if pa is not None and pb is not None and pa > 0:
            changes.append(_change("activation", "MB", pa / MB, pb / MB, True))
    u, p = mann_whitney_u(before.latency.samples_ns, after.latency.samples_ns)
    shift = (b.median_ms - a.median_ms) / a.median_ms
    if p < SIGNIFICANCE_LEVEL and abs(shift) >= MIN_MEANINGFUL_CHANGE:
        verdict = "faster" if shift < 0 else "slower"
    else:
        verdict = "no significant change"
    notes = []
    if before.model != after.model:
        notes.append(
            f"the models differ ({before.model} vs {after.model}): the change is between two "
            "models, not two runs of one"
        )
    if before.batch_size != after.batch_size:
        notes.append(
            f"the batch sizes differ ({before.batch_size} vs {after.batch_size}): the latencies "
            "(and the verdict) are of calls of different sizes; throughput is the like-for-like "
            "figure"
        )
    return Comparison(tuple(changes), u, p, verdict, tuple(notes))


# ---- files ------------------------------------------------------------------------------------


def _umask() -> int:
    """The process's umask, read without changing it (Linux ``/proc``), else the usual 022."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    return 0o022  # pragma: no cover - not Linux


STALE_TEMP_S = 600.0
"""Age in seconds after which :func:`write_atomic` removes a temporary file of its own target
that a killed process left behind (a live write of a report takes well under a second)."""


def _temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names of :func:`write_atomic`'s temporary files for a target called ``name``."""
    # mkstemp's random part: 8 characters of [a-z0-9_].
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def _remove_stale_temps(target: Path) -> None:
    """Removes temporary files of ``target`` older than :data:`STALE_TEMP_S`.

    Only a process killed while writing (SIGKILL, a power cut) leaves one; a younger one may be
    another process's write in progress and is left alone.
    """
    pattern = _temp_name_pattern(target.name)
    now = time.time()
    try:
        candidates = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    for stale in candidates:
        try:
            if now - stale.stat().st_mtime > STALE_TEMP_S:
                stale.unlink()
                logger.info("removed %s, left by a write that was killed", stale)
        except OSError:  # gone already, or not ours to remove
            continue


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Writes a file so that readers see the old content or the new, never a part.

    The data goes to a temporary file in the same folder (``.NAME.XXXXXXXX.tmp``: hidden, and
    no ``*.json`` pattern matches it), is flushed to disk, then renamed over ``path``
    (``os.replace``, atomic on POSIX). On failure or an interrupt the temporary file is
    removed; only a process killed outright (SIGKILL) leaves it, and the next write of the same
    ``path`` removes such files once they are older than :data:`STALE_TEMP_S`.

    Args:
        path: The file to write; its folder must exist.
        data: Text (written as UTF-8) or bytes.

    Returns:
        The path written.

    Raises:
        OSError: If the folder does not exist or cannot be written.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # owns fd from here: closed whatever fails below
            # mkstemp creates the file private (0600); give it the mode a plain open() would.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temps(target)
    return target


# ---- dataclass <-> JSON -----------------------------------------------------------------------

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def check_schema(
    data: Any, what: str, rerun: str, *, ours: str = SCHEMA_VERSION, kind: str | None = None
) -> None:
    """Refuses a JSON document of another kind or major schema version.

    It must be an object, carry ``kind`` in its ``"kind"`` key when ``kind`` is given, and have
    the major version of ``ours``.
    """
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"a {what} must be a JSON object, not {type(data).__name__}")
    if kind is not None and data.get("kind") != kind:
        raise InvalidArgumentError(f"not a pyinfer {what}: 'kind' is not {kind!r}")
    version = data.get("schema_version")
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise InvalidArgumentError(f"not a pyinfer {what}: schema_version is {version!r}")
    major = int(version.split(".")[0])
    ours_major = int(ours.split(".", maxsplit=1)[0])
    if major != ours_major:
        raise InvalidArgumentError(
            f"{what} schema {version} is "
            + ("newer" if major > ours_major else "older")
            + f" than this pyinfer reads ({ours_major}.x); "
            + ("upgrade pyinfer to read it" if major > ours_major else rerun)
        )


def encode_json(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): encode_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_json(v) for v in value]
    return value


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], value, where)
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"{where}: expected an object, got {value!r:.60}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in fields(tp):
            if f.name not in value:
                if f.default is not MISSING or f.default_factory is not MISSING:
                    continue  # a field with a default may be absent (added in a minor version)
                raise InvalidArgumentError(f"{where}: field '{f.name}' is missing")
            kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        unknown = set(value) - {f.name for f in fields(tp)}
        if unknown:
            logger.debug("%s: ignoring fields of a newer minor version: %s", where, unknown)
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidArgumentError(f"{where}: expected a list, got {value!r:.60}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"{where}: expected an object, got {value!r:.60}")
        _, item = typing.get_args(tp)
        return {k: _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise InvalidArgumentError(f"{where}: expected a number, got {value!r:.60}")
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: expected true or false, got {value!r:.60}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: expected an integer, got {value!r:.60}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{where}: expected a string, got {value!r:.60}")
        return value
    raise AssertionError(f"unhandled type {tp!r} at {where}")  # pragma: no cover
