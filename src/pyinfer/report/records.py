"""The result documents: a profile report, a batch curve and a sweep report.

:class:`ProfileReport` is what :meth:`pyinfer.PerformanceProfiler.profile` returns. It holds the
latency statistics (with the raw samples, so two reports can be compared), throughput, memory,
cold start, an optional batch-size curve and the environment. The documents are data; their
``to_text``/``to_markdown``/``to_table``/``to_csv``/``plot`` methods hand the work to the
rendering modules of this package (:mod:`~pyinfer.report.text`, :mod:`~pyinfer.report.tables`,
:mod:`~pyinfer.report.plots`), which know the documents only as types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import FORMATS
from pyinfer.report.codec import SCHEMA_VERSION, JsonRecord, check_schema
from pyinfer.report.environment import Environment
from pyinfer.report.files import write_atomic
from pyinfer.report.noise import NoiseReading
from pyinfer.report.plots import plot_batch_curve, plot_latency
from pyinfer.report.repetitions import Repetitions
from pyinfer.report.results import (
    ArithmeticSummary,
    BatchPoint,
    ColdStart,
    LatencyMeasurement,
    MemoryStats,
    Throughput,
)
from pyinfer.report.tables import batch_csv, batch_table, reports_to_csv
from pyinfer.report.text import report_markdown, report_text

_FORMAT_LABELS = {f.name: f.label for f in FORMATS}
_PRECISIONS = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "float64": "FP64"}


def _precision(dtypes: dict[str, str]) -> str:
    for dtype in dtypes.values():
        if dtype in _PRECISIONS:
            return _PRECISIONS[dtype]
    return ""


def _repetition_columns(reps: Repetitions | None) -> dict[str, Any]:
    """The CSV columns on the runs: their count and the between-run figures (empty: none)."""
    reproducibility = None if reps is None else reps.reproducibility
    return {
        "runs": 1 if reps is None else reps.count,
        "median_low_ms": None if reps is None else reps.interval_low_ms,
        "median_high_ms": None if reps is None else reps.interval_high_ms,
        "run_spread": None if reps is None else reps.spread,
        "run_cv_percent": None if reps is None else reps.cv_percent,
        "reproducibility_percent": None if reproducibility is None else reproducibility * 100.0,
        "reproducible": None if reps is None else reps.reproducible,
    }


@dataclass(frozen=True)
class BatchCurve(JsonRecord):
    """Latency and throughput against batch size.

    The knee is the smallest batch reaching 90% of the best throughput (``stats.KNEE_FRACTION``).
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
        """The box table of the standard batch-size section.

        The usual fourth column ("Images/Batch") holds throughput times batch size,
        which measures nothing; this table gives batches per second (RPS) there instead. A
        failed or interrupted point is marked ``[N]`` in its last cell, and its note (the
        error, or how many calls an interrupted point's figures come from) is printed under
        the table, so a long error does not widen the table.

        Args:
            mark_unstable: Put ``~`` after the latency of a point that did not meet its
                stability target (the caller explains the mark under the table).
        """
        return batch_table(self, mark_unstable=mark_unstable)

    def to_csv(self) -> str:
        """One row per batch size."""
        return batch_csv(self)

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
            FrameworkNotInstalledError: If matplotlib is missing (``pyinfer-toolkit[plot]``).
            InvalidArgumentError: If no point was measured.
        """
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
        repetitions: The runs in fresh processes and the between-run figures (``None``: one
            run in this process, run-to-run variation not measured).
        noise: The machine's load while the latency was measured (``None``: not sampled).
        arithmetic: MACs per call and the GFLOP/s achieved (``None``: not counted; reports
            written before it was added load with ``None``).
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
    repetitions: Repetitions | None = None
    noise: NoiseReading | None = None
    arithmetic: ArithmeticSummary | None = None
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
        """The report in the standard layout, then a separate ``Details`` block."""
        return report_text(self)

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
            **_repetition_columns(self.repetitions),
        }

    def to_csv(self) -> str:
        """A header and one row of :meth:`summary_row`."""
        return reports_to_csv([self])

    def to_markdown(self) -> str:
        """The report as Markdown: a heading, a metrics table, the batch table if any."""
        return report_markdown(self)

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
            FrameworkNotInstalledError: If matplotlib is missing (``pyinfer-toolkit[plot]``).
            InvalidArgumentError: If the report holds no raw samples.
        """
        return plot_latency(self, Path(path))
