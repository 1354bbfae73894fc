"""The specification's benchmark suite, and one model compared across its formats.

Two library entry points, wired to the ``pyinfer bench`` and ``pyinfer formats`` commands:

* :func:`run_suite` builds the specification's models with random weights (nothing is
  downloaded), exports them with :mod:`pyinfer.export`, loads them back with
  :func:`pyinfer.load_model` and profiles every entry with the same
  :class:`~pyinfer.ProfilerSettings`: ResNet50 in each format (PyTorch eager, TorchScript, ONNX,
  Keras, TFLite), its batch sweep, BERT-base at three sequence lengths and MobileNetV2 at two
  input sizes, on each device asked for. The result renders as the specification's tables.
* :func:`compare_formats` takes a user's model file, exports it to every format reachable from
  its framework, profiles each the same way and checks each one's outputs against the original's
  on the same random input.

An entry that fails (an export, a load, out of memory) is recorded with its reason and the suite
goes on; Ctrl-C keeps the entries already finished (see :attr:`SuiteResult.interrupted`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import pyinfer
from pyinfer._cli_common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNSTABLE
from pyinfer._environment import Environment, collect_environment
from pyinfer.errors import (
    FrameworkNotInstalledError,
    InvalidArgumentError,
    PyinferError,
    as_out_of_memory,
)
from pyinfer.profiler import PerformanceProfiler, ProfilerSettings
from pyinfer.report import (
    MB,
    JsonRecord,
    ProfileReport,
    box_table,
    check_schema,
    encode_json,
    format_ms,
    format_short,
    one_line,
    write_atomic,
)

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_INPUT_SIZES",
    "DEFAULT_SEQ_LENGTHS",
    "FORMAT_CHOICES",
    "SUITE_FORMATS",
    "SUITE_MODELS",
    "FormatEntry",
    "FormatsResult",
    "SuiteConfig",
    "SuiteEntry",
    "SuiteResult",
    "compare_formats",
    "full_settings",
    "quick_settings",
    "run_suite",
]

logger = logging.getLogger(__name__)

#: Version of the suite's and the format comparison's JSON layout (major: a field removed or
#: changed; minor: fields added; 1.1: a format's parity_output, mismatch and reused).
BENCH_SCHEMA_VERSION = "1.1"

#: The suite's models, in the specification's order.
SUITE_MODELS = ("resnet50", "bert", "mobilenetv2")
#: ResNet50's formats, in the specification's row order, then TensorFlow's.
SUITE_FORMATS = ("pytorch", "onnx", "torchscript", "tensorflow", "tflite")
#: The specification's row names; TensorFlow's (a Keras ``.keras`` file run by TensorFlow)
#: fits the specification's 16-character first column, so the header stays its own.
SUITE_FORMAT_LABELS = {
    "pytorch": "PyTorch (FP32)",
    "onnx": "ONNX (FP32)",
    "torchscript": "TorchScript",
    "tensorflow": "Keras (FP32)",
    "tflite": "TFLite (FP32)",
}
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DEFAULT_SEQ_LENGTHS = (128, 256, 512)
DEFAULT_INPUT_SIZES = (224, 320)
RESNET_IMAGE_SIZE = 224
#: BERT-base's ``max_position_embeddings``: its longest sequence.
BERT_MAX_POSITIONS = 512

#: Formats ``compare_formats`` knows, by the name ``--formats`` takes.
FORMAT_CHOICES = ("eager", "torchscript", "torch-export", "onnx", "keras", "saved-model", "tflite")
_FORMAT_ROW_LABELS = {
    "eager": "PyTorch (FP32)",
    "torchscript": "TorchScript",
    "torch-export": "torch.export",
    "onnx": "ONNX (FP32)",
    "keras": "Keras",
    "saved-model": "SavedModel",
    "tflite": "TFLite (FP32)",
}
#: Parity tolerance: the largest output difference, relative to the largest magnitude of the
#: original's output, that still counts as the same result. float32 formats reorder sums
#: (fused BatchNorm, other kernels), which moves results by a few 1e-6 of their range; 1e-4
#: leaves room for deep models while catching a wrong layout or a dropped layer. TFLite's
#: XNNPACK kernels drift more, hence 1e-3.
PARITY_TOLERANCE = 1e-4
PARITY_TOLERANCE_TFLITE = 1e-3
#: ``--quick``'s stability target: the median known within +-2%, the accuracy the profiler
#: promises at the median (its default, 1%, takes more calls than a few seconds give a model
#: that takes half a second). The std-over-mean test would flag every fast model on a shared
#: machine, where one preempted call in a hundred sends it over 5%.
QUICK_STABILITY_TARGET = 0.02
#: The suite warns when other processes keep at least this many CPUs busy as it starts: torch
#: and ONNX Runtime run one thread per core, and a thread that shares its core with another
#: process makes every call wait for it (seen here: ResNet50 eager from 60 ms to over a second
#: per call while another process's test suite ran on one of the 2 cores).
BUSY_CPUS = 0.5
#: How long the suite samples ``/proc/stat`` before it starts.
BUSY_SAMPLE_S = 0.5

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
_REASON_WIDTH = 32

Progress = Callable[[str], None]


def quick_settings() -> ProfilerSettings:
    """Short measurement settings for ``--quick``: the whole suite in minutes on 2 CPU cores.

    Three warm-up calls, then at least 10 timed calls and 0.5 s, capped at 3 s per entry; stable
    when the median's 95% confidence interval is within +-2% (:data:`QUICK_STABILITY_TARGET`).
    No separate throughput run: throughput is items over the latency run's wall time. One
    memory call.
    """
    return ProfilerSettings(
        warmup_iterations=3,
        warmup_until_settled=False,
        min_iterations=10,
        min_time_s=0.5,
        max_iterations=1000,
        max_time_s=3.0,
        stability_target=QUICK_STABILITY_TARGET,
        memory_runs=1,
    )


def full_settings() -> ProfilerSettings:
    """The profiler's defaults, with the time cap lowered to 20 s per entry."""
    return ProfilerSettings(max_time_s=20.0)


# ---- results ----------------------------------------------------------------------------------


class _BenchRecord(JsonRecord):
    """The JSON of a bench result: a ``"kind"`` key and the bench schema version."""

    JSON_KIND: typing.ClassVar[str]
    JSON_RERUN: typing.ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, with the document's kind."""
        return {**super().to_dict(), "kind": self.JSON_KIND}

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(
            data, cls.JSON_WHAT, cls.JSON_RERUN, ours=BENCH_SCHEMA_VERSION, kind=cls.JSON_KIND
        )


@dataclass(frozen=True)
class SuiteEntry:
    """One row of the suite's tables.

    Attributes:
        table: ``"resnet50"``, ``"resnet50-batch"``, ``"bert"`` or ``"mobilenetv2"``.
        device: ``"cpu"`` or ``"cuda"``.
        key: The row's key: a format name, a sequence length, an input size, ``"sweep"``.
        label: The row's name in the table.
        status: ``"ok"``, ``"failed"`` or ``"skipped"`` (not possible here: a framework not
            installed, a format without that device).
        report: The profile (with the batch curve for the sweep); ``None`` unless ok.
        reason: Why it failed or was skipped.
        prepare_s: Seconds spent building, exporting and loading the model.
        elapsed_s: Seconds the whole entry took.
    """

    table: str
    device: str
    key: str
    label: str
    status: str
    report: ProfileReport | None = None
    reason: str = ""
    prepare_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def stable(self) -> bool:
        """Whether every measurement of the entry met its stability target."""
        if self.report is None:
            return True
        curve = self.report.batch_curve
        if curve is not None:
            return all(p.stable is not False for p in curve.points)
        return self.report.stable


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _reason(exc: BaseException) -> str:
    """One line: the error's type and message (terminal colour codes removed)."""
    oom = as_out_of_memory(exc)
    if oom is not None:
        return f"out of memory: {one_line(_ANSI.sub('', str(oom)))}"
    return f"{type(exc).__name__}: {one_line(_ANSI.sub('', str(exc)))}"


def _status_cell(status: str, reason: str) -> str:
    """A failed or skipped row's cell: the reason's first part; the whole one goes below."""
    if len(reason) <= _REASON_WIDTH:
        return f"{status}: {reason}"
    return f"{status}: {reason.split(':', 1)[0][:_REASON_WIDTH]}"


def _device_heading(environment: Environment, device: str) -> str:
    """The table's heading the way the specification names devices."""
    if device.startswith("cuda"):
        memory = environment.gpu_memory_bytes
        size = f", {memory / 1024**3:.0f}GB" if memory else ""
        return f"GPU ({environment.gpu_name or device}{size})"
    cores = environment.physical_cores
    count = f"{cores} cores" if cores else f"{environment.logical_cores} logical cores"
    return f"CPU ({environment.cpu_model}, {count})"


_TITLES = {
    "resnet50": "ResNet50 (Image Classification)",
    "bert": "BERT-Base (Text Classification)",
    "mobilenetv2": "MobileNetV2 (Lightweight Model)",
}


@dataclass(frozen=True)
class SuiteResult(_BenchRecord):
    """What :func:`run_suite` measured.

    Attributes:
        entries: Every entry run, in order.
        environments: The environment per device (``"cpu"``, ``"cuda"``).
        config: The configuration, as JSON-ready values.
        settings: The profiler settings every entry used.
        wall_s: Wall time of the whole suite, exports included.
        interrupted: Whether Ctrl-C stopped it (the entry running then is dropped).
        busy_cpus: How many CPUs other processes kept busy just before the suite started
            (from ``/proc/stat`` over :data:`BUSY_SAMPLE_S`; ``None`` where unknown).
        schema_version: The JSON layout's version.
    """

    entries: tuple[SuiteEntry, ...]
    environments: dict[str, Environment]
    config: dict[str, Any]
    settings: dict[str, Any]
    wall_s: float
    interrupted: bool = False
    busy_cpus: float | None = None
    schema_version: str = BENCH_SCHEMA_VERSION

    @property
    def failed(self) -> tuple[SuiteEntry, ...]:
        """The entries that failed."""
        return tuple(e for e in self.entries if e.status == FAILED)

    @property
    def unstable(self) -> tuple[SuiteEntry, ...]:
        """The measured entries whose measurement did not become stable."""
        return tuple(e for e in self.entries if e.status == OK and not e.stable)

    @property
    def exit_code(self) -> int:
        """130 if interrupted, else 1 if an entry failed, else 3 if one was unstable, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed:
            return EXIT_FAILED
        return EXIT_UNSTABLE if self.unstable else EXIT_OK

    def tables(self) -> list[tuple[str, str, str]]:
        """Every table as (section title, device heading, box table with its footnotes)."""
        out: list[tuple[str, str, str]] = []
        devices = list(dict.fromkeys(e.device for e in self.entries))
        for model in SUITE_MODELS:
            for device in devices:
                env = self.environments.get(device)
                heading = _device_heading(env, device) if env is not None else device
                rows = [e for e in self.entries if e.device == device]
                if model == "resnet50":
                    formats = [e for e in rows if e.table == "resnet50"]
                    if formats:
                        out.append((_TITLES[model], heading, _formats_table(formats)))
                    for e in (e for e in rows if e.table == "resnet50-batch"):
                        device_text = heading.replace(" (", " ", 1).removesuffix(")")
                        title = f"Batch Processing ({device_text}; PyTorch FP32)"
                        out.append((_TITLES[model], title, _batch(e)))
                else:
                    chosen = [e for e in rows if e.table == model]
                    if chosen:
                        out.append((_TITLES[model], heading, _small_table(model, chosen)))
        return out

    def summary_line(self) -> str:
        """One line: entries, failures, unstable ones, wall time."""
        ok = sum(e.status == OK for e in self.entries)
        skipped = sum(e.status == SKIPPED for e in self.entries)
        parts = [f"{len(self.entries)} entries: {ok} measured"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if skipped:
            parts.append(f"{skipped} skipped")
        if self.unstable:
            parts.append(f"{len(self.unstable)} not stable")
        text = ", ".join(parts) + f"; wall time {self.wall_s:.1f} s"
        if self.interrupted:
            text += " (interrupted: the entry running then was dropped)"
        busy = _busy_warning(self.busy_cpus)
        if busy:
            text += "\n" + busy
        return text

    def to_text(self) -> str:
        """Every table under its model's title and device heading, then a summary line."""
        lines: list[str] = []
        title = None
        for section, heading, table in self.tables():
            if section != title:
                if lines:
                    lines.append("")
                lines += [section, "=" * len(section)]
                title = section
            lines += ["", heading, table]
        if lines:
            lines.append("")
        lines.append(self.summary_line())
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The tables in Markdown: ``###`` per model, a bold device heading, fenced tables."""
        lines: list[str] = []
        title = None
        for section, heading, table in self.tables():
            if section != title:
                lines += [f"### {section}", ""]
                title = section
            lines += [f"**{heading}**", "```", table, "```", ""]
        lines.append(self.summary_line())
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: every entry with its full report, the tables' text, the rest."""
        data = super().to_dict()
        data["tables"] = [
            {"title": t, "heading": h, "table": table} for t, h, table in self.tables()
        ]
        data["rows"] = self.rows()
        data["exit_code"] = self.exit_code
        return data

    def rows(self) -> list[dict[str, Any]]:
        """The tables' rows as figures: one per entry, one per batch size of the sweep.

        Each row has the table, device, row name, status (and reason), latency mean and median
        in ms, throughput in items per second, memory in MB (parameters plus peak activation)
        and whether it was stable; figures are ``None`` where not measured.
        """
        out: list[dict[str, Any]] = []
        for e in self.entries:
            base = {"table": e.table, "device": e.device, "status": e.status, "reason": e.reason}
            curve = e.report.batch_curve if e.report is not None else None
            if curve is not None:
                for p in curve.points:
                    out.append(
                        {
                            **base,
                            "row": str(p.batch_size),
                            "latency_ms": p.latency_mean_ms,
                            "latency_median_ms": p.latency_median_ms,
                            "throughput": p.throughput_fps,
                            "memory_mb": None,
                            "stable": p.stable,
                        }
                    )
                continue
            r = e.report
            m = r.memory if r is not None else None
            out.append(
                {
                    **base,
                    "row": e.label,
                    "latency_ms": r.latency.stats.mean_ms if r else None,
                    "latency_median_ms": r.latency.stats.median_ms if r else None,
                    "throughput": r.throughput_fps if r else None,
                    "memory_mb": (m.parameter_bytes + (m.peak_activation_bytes or 0)) / MB
                    if m
                    else None,
                    "stable": e.stable if r else None,
                }
            )
        return out

    JSON_WHAT = "suite result"
    JSON_ROOT = "suite"
    JSON_KIND = "pyinfer-bench-suite"
    JSON_RERUN = "run the suite again"


def _footnotes(entries: Sequence[SuiteEntry | FormatEntry]) -> list[str]:
    notes = []
    if any(e.status == OK and not e.stable for e in entries):
        notes.append("~ not stable: the figure's stability target was not met (see the JSON)")
    for e in entries:
        if e.status != OK and len(e.reason) > _REASON_WIDTH:
            notes.append(f"{e.label}: {e.status}: {e.reason}")
    return notes


def _with_notes(table: str, notes: Sequence[str]) -> str:
    return "\n".join([table, *notes])


def _latency(entry: SuiteEntry | FormatEntry) -> str:
    """The Latency cell: the mean in ms, with ``~`` when the measurement was not stable.

    The mark goes on the figure, not the row name, so that it never widens the first column
    past the specification's width.
    """
    assert entry.report is not None
    mark = "" if entry.stable else "~"
    return format_short(entry.report.latency.stats.mean_ms) + mark


def _memory_mb(report: ProfileReport) -> str:
    m = report.memory
    if m is None:
        return "-"
    megabytes = (m.parameter_bytes + (m.peak_activation_bytes or 0)) / MB
    return f"{megabytes:.0f}" if megabytes >= 10 else format_short(megabytes)


def _formats_table(entries: Sequence[SuiteEntry]) -> str:
    """The specification's format table; failed and skipped rows say why in the last column.

    Rows are :func:`~pyinfer.report.comparison_table`'s (same figures, header and widths), built
    here so that unstable figures can be marked and failed rows can stand in the table.
    """
    rows = []
    for e in entries:
        if e.report is not None:
            r = e.report
            rows.append((e.label, _latency(e), f"{r.throughput_fps:.1f}", _memory_mb(r)))
        else:
            rows.append((e.label, "-", "-", _status_cell(e.status, e.reason)))
    header = ("Model Format", "Latency (ms)", "Throughput (FPS)", "Memory (MB)")
    return _with_notes(box_table(header, rows, widths=(16, 14, 18, 12)), _footnotes(entries))


def _batch(entry: SuiteEntry) -> str:
    if entry.report is None or entry.report.batch_curve is None:
        return f"{entry.label}: {entry.status}: {entry.reason}"
    curve = entry.report.batch_curve
    notes = []
    unstable = [str(p.batch_size) for p in curve.points if p.stable is False]
    if unstable:
        notes.append(
            f"~ not stable at batch {', '.join(unstable)}: the stability target was not met "
            "(see the JSON)"
        )
    return _with_notes(curve.to_table(mark_unstable=True), notes)


_SMALL_HEADERS = {
    "bert": (("Sequence Length", "Latency (ms)", "Throughput (seq/s)"), (16, 14, 19)),
    "mobilenetv2": (("Input Size", "Latency (ms)", "Throughput (FPS)"), (15, 14, 17)),
}


def _small_table(model: str, entries: Sequence[SuiteEntry]) -> str:
    """BERT's and MobileNetV2's tables, with the specification's header and widths."""
    header, widths = _SMALL_HEADERS[model]
    rows = []
    for e in entries:
        if e.report is not None:
            rows.append((e.label, _latency(e), _fps(e.report)))
        else:
            rows.append((e.label, "-", _status_cell(e.status, e.reason)))
    return _with_notes(box_table(header, rows, widths, center_first=True), _footnotes(entries))


def _fps(report: ProfileReport) -> str:
    return f"{report.throughput_fps:.1f}"


# ---- the suite --------------------------------------------------------------------------------


def _names(values: Sequence[str], allowed: Sequence[str], option: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise InvalidArgumentError(
            f"{option}: unknown name {', '.join(repr(u) for u in unknown) or 'none given'}; "
            f"use one or more of {', '.join(allowed)}"
        )
    return tuple(dict.fromkeys(values))


def _sizes(values: Sequence[int], option: str) -> tuple[int, ...]:
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise InvalidArgumentError(f"{option} must be integers of at least 1, got {list(values)}")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class SuiteConfig:
    """What :func:`run_suite` runs.

    Attributes:
        models: Some of :data:`SUITE_MODELS`.
        formats: ResNet50's formats, some of :data:`SUITE_FORMATS`.
        devices: ``"cpu"`` and/or ``"cuda"``; empty: the CPU, plus CUDA when available.
        batch_sizes: ResNet50's batch sweep (PyTorch eager).
        seq_lengths: BERT's sequence lengths.
        input_sizes: MobileNetV2's square input sizes (at least 32: its five stride-2 stages).
        image_size: ResNet50's input size.
        quick: Use :func:`quick_settings` (else :func:`full_settings`).
        settings: Explicit profiler settings (override ``quick``; the batch size and dims are
            set per entry).
        work_dir: Keep exported models here and reuse them on the next run; ``None``: a
            temporary folder, removed at the end.
        bert_config: Overrides of ``transformers.BertConfig`` (a smaller BERT for tests).
        seed: Seed of the random weights and inputs.
    """

    models: tuple[str, ...] = SUITE_MODELS
    formats: tuple[str, ...] = SUITE_FORMATS
    devices: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seq_lengths: tuple[int, ...] = DEFAULT_SEQ_LENGTHS
    input_sizes: tuple[int, ...] = DEFAULT_INPUT_SIZES
    image_size: int = RESNET_IMAGE_SIZE
    quick: bool = False
    settings: ProfilerSettings | None = None
    work_dir: Path | None = None
    bert_config: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", _names(self.models, SUITE_MODELS, "--only"))
        object.__setattr__(self, "formats", _names(self.formats, SUITE_FORMATS, "--formats"))
        if self.devices:
            _names(self.devices, ("cpu", "cuda"), "--device")
        object.__setattr__(self, "batch_sizes", _sizes(self.batch_sizes, "--batch-sizes"))
        object.__setattr__(self, "seq_lengths", _sizes(self.seq_lengths, "--seq-lengths"))
        positions = int(self.bert_config.get("max_position_embeddings", BERT_MAX_POSITIONS))
        if "bert" in self.models and max(self.seq_lengths) > positions:
            raise InvalidArgumentError(
                f"--seq-lengths must be at most {positions} (BERT-base's position embeddings), "
                f"got {max(self.seq_lengths)}"
            )
        sizes = _sizes(self.input_sizes, "--input-sizes")
        if min(sizes) < 32:
            raise InvalidArgumentError(
                f"--input-sizes must be at least 32 (MobileNetV2 halves its input five times), "
                f"got {min(sizes)}"
            )
        object.__setattr__(self, "input_sizes", sizes)
        if self.image_size < 32:
            raise InvalidArgumentError(
                f"--image-size must be at least 32 (ResNet50 halves its input five times), "
                f"got {self.image_size}"
            )

    def profiler_settings(self) -> ProfilerSettings:
        """The settings every entry uses."""
        if self.settings is not None:
            return self.settings
        return quick_settings() if self.quick else full_settings()

    def resolved_devices(self) -> tuple[str, ...]:
        """The devices to run on: as given, or the CPU plus CUDA when available."""
        if self.devices:
            return self.devices
        return ("cpu", "cuda") if pyinfer.cuda_available() else ("cpu",)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values."""
        return {
            "models": list(self.models),
            "formats": list(self.formats),
            "devices": list(self.resolved_devices()),
            "batch_sizes": list(self.batch_sizes),
            "seq_lengths": list(self.seq_lengths),
            "input_sizes": list(self.input_sizes),
            "image_size": self.image_size,
            "quick": self.quick,
            "work_dir": None if self.work_dir is None else str(self.work_dir),
            "bert_config": dict(self.bert_config),
            "seed": self.seed,
        }


class _Artifacts:
    """Exported files in a folder, reused when the manifest says they match.

    A file matches when the manifest holds the same key (model, format, size, seed and the
    versions of pyinfer and the frameworks) and its size and modification time are those
    recorded when it was written. The record is written (atomically) only after the file is
    complete, and removed before a file is rewritten, so a file left half-written by a killed
    run is never reused: the next run exports it again.
    """

    MANIFEST = "pyinfer-bench-manifest.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._manifest_path = folder / self.MANIFEST
        self._manifest: dict[str, Any] = {}
        if self._manifest_path.is_file():
            try:
                loaded = json.loads(self._manifest_path.read_text())
                if isinstance(loaded, dict):
                    self._manifest = loaded
            except (OSError, ValueError):
                logger.warning("ignoring an unreadable %s", self._manifest_path)
        self.reused: list[str] = []

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        extra = path.with_name(path.name + ".data")
        if extra.is_file():
            files.append(extra)
        return [sum(p.stat().st_size for p in files), max(p.stat().st_mtime_ns for p in files)]

    def get(self, name: str, key: str, write: Callable[[Path], object]) -> Path:
        """The artifact ``name``: reused if it matches ``key``, else (re)written by ``write``."""
        path = self.folder / name
        record = self._manifest.get(name)
        if (
            isinstance(record, dict)
            and record.get("key") == key
            and path.exists()
            and record.get("stamp") == self._stamp(path)
        ):
            self.reused.append(name)
            logger.info("reusing %s", path)
            return path
        if self._manifest.pop(name, None) is not None:
            # Forget the old file before touching it: a run killed while writing the new one
            # must leave no record that would vouch for the half-written file.
            write_atomic(self._manifest_path, json.dumps(self._manifest, indent=2))
        for stale in (path, path.with_name(path.name + ".data")):
            if stale.is_symlink():
                # Written afresh, never through a link (one planted in a shared folder would
                # make the export overwrite the file it points to).
                stale.unlink()
        if path.is_dir():
            shutil.rmtree(path)
        write(path)
        self._manifest[name] = {"key": key, "stamp": self._stamp(path)}
        write_atomic(self._manifest_path, json.dumps(self._manifest, indent=2))
        return path


@contextlib.contextmanager
def _folder(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="pyinfer-bench-") as tmp:
        yield Path(tmp)


class _Models:
    """The suite's models, built once with seeded random weights."""

    def __init__(self, config: SuiteConfig, artifacts: _Artifacts) -> None:
        self.config = config
        self.artifacts = artifacts
        self._cache: dict[str, Any] = {}
        versions = collect_environment().versions
        self._versions = ",".join(f"{k}={v}" for k, v in sorted(versions.items()))

    def _once(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def torch_resnet(self) -> Any:
        def build() -> Any:
            import torch

            resnet50 = _require("torchvision.models", "torch", "ResNet50").resnet50

            torch.manual_seed(self.config.seed)
            return resnet50(weights=None).eval()

        return self._once("torch-resnet50", build)

    def keras_resnet(self) -> Any:
        def build() -> Any:
            from pyinfer.backends.frameworks import import_tensorflow

            import_tensorflow()
            import keras

            keras.utils.set_random_seed(self.config.seed)
            size = self.config.image_size
            return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))

        return self._once("keras-resnet50", build)

    def key(self, what: str) -> str:
        c = self.config
        return f"{what}|image={c.image_size}|seed={c.seed}|{self._versions}"

    def resnet_example(self) -> Any:
        import torch

        size = self.config.image_size
        return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _require(module: str, extra: str, what: str) -> Any:
    """Imports ``module`` for ``what``, or raises FrameworkNotInstalledError naming the extra."""
    import importlib

    from pyinfer.backends.frameworks import ensure_triton_safe

    try:
        ensure_triton_safe()
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", maxsplit=1)[0]
        raise FrameworkNotInstalledError(
            f"{what} needs {package} ({exc}); pip install 'pyinfer[{extra}]'"
        ) from exc


def _torch_loader(**options: Any) -> Any:
    from pyinfer.model_loader import PyTorchModelLoader

    return PyTorchModelLoader(**options)


def _resnet_model(models: _Models, fmt: str, device: str) -> Any:
    """ResNet50 in ``fmt`` on ``device``: built, exported (or reused) and loaded."""
    from pyinfer import export

    size = models.config.image_size
    name = "ResNet50"
    if fmt == "pytorch":
        module = copy.deepcopy(models.torch_resnet())
        shapes = {"x": (None, 3, size, size)}
        return _torch_loader(input_shapes=shapes).from_module(module, device=device, name=name)
    if fmt == "torchscript":
        path = models.artifacts.get(
            "resnet50.torchscript.pt",
            models.key("resnet50-torchscript"),
            lambda p: export.export_torchscript(models.torch_resnet(), p, models.resnet_example()),
        )
        shapes = {"x": (None, 3, size, size)}
        return pyinfer.load_model(path, device=device, name=name, input_shapes=shapes)
    if fmt == "onnx":
        path = models.artifacts.get(
            "resnet50.onnx",
            models.key("resnet50-onnx"),
            lambda p: export.export_onnx(models.torch_resnet(), p, models.resnet_example()),
        )
        return pyinfer.load_model(path, device=device, name=name)
    if fmt == "tensorflow":
        path = models.artifacts.get(
            "resnet50.keras",
            models.key("resnet50-keras"),
            lambda p: export.export_keras(models.keras_resnet(), p, format="keras"),
        )
        return pyinfer.load_model(path, device=device, name=name)
    if device != "cpu":
        raise _Skip("TFLite runs on the CPU only")
    path = models.artifacts.get(
        "resnet50.tflite",
        models.key("resnet50-tflite"),
        lambda p: export.export_keras(models.keras_resnet(), p, format="tflite"),
    )
    return pyinfer.load_model(path, device=device, name=name)


class _Skip(Exception):  # noqa: N818 - a signal, not an error
    """An entry that cannot run here (a format without that device)."""


@dataclass
class _Job:
    table: str
    device: str
    key: str
    label: str
    run: Callable[[], tuple[ProfileReport, float]]


def _profile(
    model: Any, settings: ProfilerSettings, *, prepare_s: float, **kwargs: Any
) -> tuple[ProfileReport, float]:
    try:
        report = PerformanceProfiler(model, settings).profile(**kwargs)
    finally:
        model.close()
    return report, prepare_s


def _timed(build: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    model = build()
    return model, time.perf_counter() - start


def _jobs(config: SuiteConfig, models: _Models, device: str) -> list[_Job]:
    settings = config.profiler_settings()
    # --quick: no separate throughput run; throughput is items over the latency run's time.
    throughput = not (config.quick and config.settings is None)
    jobs: list[_Job] = []
    if "resnet50" in config.models:
        for fmt in config.formats:

            def run_format(fmt: str = fmt) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: _resnet_model(models, fmt, device))
                return _profile(
                    model, settings, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("resnet50", device, fmt, SUITE_FORMAT_LABELS[fmt], run_format))

        def run_sweep() -> tuple[ProfileReport, float]:
            model, prep = _timed(lambda: _resnet_model(models, "pytorch", device))
            return _profile(
                model,
                settings,
                prepare_s=prep,
                batch_size=1,
                batch_sizes=list(config.batch_sizes),
                memory=False,
                throughput=False,
            )

        jobs.append(
            _Job("resnet50-batch", device, "sweep", "PyTorch (FP32) batch sweep", run_sweep)
        )
    if "bert" in config.models:
        for length in config.seq_lengths:

            def run_bert(length: int = length) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: _bert_model(models, device))
                per_length = dataclasses.replace(settings, input_dims={"sequence": length})
                return _profile(
                    model, per_length, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("bert", device, str(length), str(length), run_bert))
    if "mobilenetv2" in config.models:
        for size in config.input_sizes:

            def run_mobilenet(size: int = size) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: _mobilenet_model(models, device))
                per_size = dataclasses.replace(settings, input_dims={"height": size, "width": size})
                return _profile(
                    model, per_size, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("mobilenetv2", device, str(size), f"{size}x{size}", run_mobilenet))
    return jobs


def _bert_model(models: _Models, device: str) -> Any:
    def build() -> Any:
        import torch

        transformers = _require("transformers", "text", "BERT-base")
        BertConfig, BertModel = transformers.BertConfig, transformers.BertModel  # noqa: N806

        torch.manual_seed(models.config.seed)
        bert: Any = BertModel(BertConfig(**dict(models.config.bert_config)))
        return bert.eval()

    module = copy.deepcopy(models._once("torch-bert", build))
    loader = _torch_loader(
        input_shapes={"input_ids": (None, "sequence")}, input_dtypes={"input_ids": "int64"}
    )
    return loader.from_module(module, device=device, name="BERT-Base")


def _mobilenet_model(models: _Models, device: str) -> Any:
    def build() -> Any:
        import torch

        mobilenet_v2 = _require("torchvision.models", "torch", "MobileNetV2").mobilenet_v2

        torch.manual_seed(models.config.seed)
        return mobilenet_v2(weights=None).eval()

    module = copy.deepcopy(models._once("torch-mobilenetv2", build))
    loader = _torch_loader(input_shapes={"x": (None, 3, "height", "width")})
    return loader.from_module(module, device=device, name="MobileNetV2")


def _run_job(job: _Job) -> SuiteEntry:
    start = time.perf_counter()
    base: dict[str, Any] = {
        "table": job.table,
        "device": job.device,
        "key": job.key,
        "label": job.label,
    }
    try:
        report, prepare_s = job.run()
    except _Skip as exc:
        return SuiteEntry(**base, status=SKIPPED, reason=str(exc))
    except FrameworkNotInstalledError as exc:
        return SuiteEntry(**base, status=SKIPPED, reason=f"not installed: {one_line(str(exc))}")
    except Exception as exc:
        logger.warning("%s %s failed: %s", job.device, job.label, exc, exc_info=True)
        return SuiteEntry(
            **base, status=FAILED, reason=_reason(exc), elapsed_s=time.perf_counter() - start
        )
    return SuiteEntry(
        **base,
        status=OK,
        report=report,
        prepare_s=prepare_s,
        elapsed_s=time.perf_counter() - start,
    )


def _settings_dict(settings: ProfilerSettings) -> dict[str, Any]:
    data = encode_json(settings)
    assert isinstance(data, dict)
    return data


def run_suite(
    config: SuiteConfig | None = None, *, progress: Progress | None = None
) -> SuiteResult:
    """Runs the specification's benchmark suite.

    Args:
        config: What to run (default: everything, full settings, the CPU plus CUDA if present).
        progress: Called with a line per step (which entry, elapsed time), for a user to watch.

    Returns:
        The result. An entry that fails is recorded with its reason; Ctrl-C ends the run with
        ``interrupted`` set and the entries finished before it.

    Raises:
        InvalidArgumentError: On a bad configuration (checked before anything runs).
    """
    config = config or SuiteConfig()
    settings = config.profiler_settings()
    devices = config.resolved_devices()
    say = progress or (lambda line: logger.info("%s", line))
    load = _busy_cpus()  # before the clock starts: sampling the machine is not the suite
    busy = _busy_warning(load)
    if busy:
        say(busy)
    start = time.perf_counter()
    entries: list[SuiteEntry] = []
    environments: dict[str, Environment] = {}
    interrupted = False
    try:
        with _folder(config.work_dir) as folder:
            artifacts = _Artifacts(folder)
            models = _Models(config, artifacts)
            for device in devices:
                environments[device] = collect_environment(
                    cuda_device=0 if device == "cuda" else None
                )
            jobs = [job for device in devices for job in _jobs(config, models, device)]
            for number, job in enumerate(jobs, 1):
                say(
                    f"[{number}/{len(jobs)}] {job.device} {_TABLE_NAMES[job.table]} {job.label} "
                    f"(elapsed {time.perf_counter() - start:.0f} s)"
                )
                entry = _run_job(job)
                entries.append(entry)
                say(f"[{number}/{len(jobs)}] {_done(entry)}")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: keeping the entries finished so far")
    return SuiteResult(
        entries=tuple(entries),
        environments=environments,
        config=config.to_dict(),
        settings=_settings_dict(settings),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
        busy_cpus=load,
    )


def _cpu_times() -> tuple[int, int] | None:
    """Total and idle jiffies of all CPUs (``/proc/stat``), or ``None`` off Linux."""
    try:
        with Path("/proc/stat").open(encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(values) < 5:
        return None
    return sum(values[:8]), values[3] + values[4]  # idle + iowait


def _busy_cpus(interval_s: float = 0.0) -> float | None:
    """CPUs kept busy by any process over a short sample (this one is idle meanwhile)."""
    first = _cpu_times()
    time.sleep(interval_s or BUSY_SAMPLE_S)
    second = _cpu_times()
    if first is None or second is None or second[0] <= first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return (total - idle) / total * (os.cpu_count() or 1)


def _busy_warning(busy: float | None) -> str:
    """A warning when other processes keep the CPUs busy (measurements will be noisy)."""
    cores = os.cpu_count() or 1
    if busy is None or busy < BUSY_CPUS:
        return ""
    return (
        f"warning: other processes kept {busy:.1f} of {cores} CPUs busy before the suite "
        "started: expect noisy and unstable measurements"
    )


_TABLE_NAMES = {
    "resnet50": "ResNet50",
    "resnet50-batch": "ResNet50",
    "bert": "BERT-Base seq",
    "mobilenetv2": "MobileNetV2",
}


def _done(entry: SuiteEntry | FormatEntry) -> str:
    if entry.report is None:
        return f"{entry.label}: {entry.status}: {entry.reason}"
    r = entry.report
    stable = "" if entry.stable else ", not stable"
    return (
        f"{entry.label}: {format_ms(r.latency.stats.mean_ms)} ms, {r.throughput_fps:.1f}/s{stable} "
        f"({entry.elapsed_s:.1f} s)"
    )


# ---- one model across its formats -------------------------------------------------------------


@dataclass(frozen=True)
class FormatEntry:
    """One format of :func:`compare_formats`.

    Attributes:
        format: Its name (one of :data:`FORMAT_CHOICES`).
        label: The row's name.
        status: ``"ok"``, ``"failed"`` or ``"skipped"``.
        original: Whether this is the user's own file (the parity reference).
        path: The file profiled.
        report: The profile, when measured.
        reason: Why it failed or was skipped.
        max_abs_error: Largest absolute difference of the outputs from the original's.
        relative_error: The largest, over the outputs, of an output's largest absolute
            difference over the largest magnitude of the original's same output; infinite when
            an integer or boolean output (compared exactly) differs.
        tolerance: The largest ``relative_error`` that counts as a match.
        parity: ``True`` when the outputs match, ``False`` when they do not, ``None`` when not
            checked (the original itself, or a failed row).
        parity_output: The output with the largest error; on a mismatch, the one that differs.
        mismatch: On a mismatch, which output differs and how (one line).
        prepare_s: Seconds to export and load it.
        elapsed_s: Seconds the whole row took.
        reused: Whether the export was reused from the work folder (written by an earlier run
            from the same model file, inputs, options and versions).
    """

    format: str
    label: str
    status: str
    original: bool = False
    path: str = ""
    report: ProfileReport | None = None
    reason: str = ""
    max_abs_error: float | None = None
    relative_error: float | None = None
    tolerance: float = PARITY_TOLERANCE
    parity: bool | None = None
    parity_output: str = ""
    mismatch: str = ""
    prepare_s: float = 0.0
    elapsed_s: float = 0.0
    reused: bool = False

    @property
    def stable(self) -> bool:
        """Whether the measurement met its stability target."""
        return self.report is None or self.report.stable

    def parity_text(self) -> str:
        """The Parity column."""
        if self.original:
            return "reference"
        if self.parity is None or self.relative_error is None:
            return "-"
        if self.parity:
            return f"ok ({self.relative_error:.1e})"
        if math.isinf(self.relative_error):  # an integer or boolean output
            return f"MISMATCH {self.parity_output}"
        return f"MISMATCH {self.parity_output} ({self.relative_error:.1e})"


@dataclass(frozen=True)
class FormatsResult(_BenchRecord):
    """What :func:`compare_formats` measured.

    Attributes:
        source: The user's model file.
        source_format: Its detected format.
        device: Where every format ran.
        batch_size: Items per call.
        entries: One per format, the original first.
        note: What is (not) reachable from the source.
        environment: The machine and software.
        settings: The profiler settings every format used.
        wall_s: Wall time, exports included.
        interrupted: Whether Ctrl-C stopped it.
        schema_version: The JSON layout's version.
    """

    source: str
    source_format: str
    device: str
    batch_size: int
    entries: tuple[FormatEntry, ...]
    note: str
    environment: Environment
    settings: dict[str, Any]
    wall_s: float
    interrupted: bool = False
    schema_version: str = BENCH_SCHEMA_VERSION

    @property
    def exit_code(self) -> int:
        """130 interrupted, 1 a format failed or mismatched, 3 one was unstable, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if any(e.status == FAILED or e.parity is False for e in self.entries):
            return EXIT_FAILED
        if any(e.status == OK and not e.stable for e in self.entries):
            return EXIT_UNSTABLE
        return EXIT_OK

    def table(self) -> str:
        """The comparison table with its Parity column."""
        header = ("Model Format", "Latency (ms)", "Throughput (FPS)", "Memory (MB)", "Parity")
        rows = []
        for e in self.entries:
            if e.report is not None:
                r = e.report
                rows.append(
                    (
                        e.label,
                        _latency(e),
                        f"{r.throughput_fps:.1f}",
                        _memory_mb(r),
                        e.parity_text(),
                    )
                )
            else:
                rows.append((e.label, "-", "-", "-", _status_cell(e.status, e.reason)))
        table = box_table(header, rows, widths=(16, 14, 18, 13, 12))
        return _with_notes(table, _footnotes(self.entries))

    def recommendation(self) -> str:
        """One line: the fastest format whose outputs match, against the original."""
        measured = [e for e in self.entries if e.report is not None and e.parity is not False]
        mismatched = [f"{e.label} ({e.mismatch})" for e in self.entries if e.parity is False]
        failed = [e.label for e in self.entries if e.status == FAILED]
        if not measured:
            return "no format was measured"
        best = min(measured, key=_mean)
        original = next((e for e in self.entries if e.original and e.report is not None), None)
        text = f"fastest at batch {self.batch_size}: {best.label}"
        if original is not None and best is not original:
            text += f", {_mean(original) / _mean(best):.2f}x {original.label}"
        elif best.original:
            text += " (the original)"
        if mismatched:
            text += "; outputs differ: " + ", ".join(mismatched)
        elif any(e.parity for e in self.entries):
            text += "; all outputs match"
        if failed:
            text += "; failed: " + ", ".join(failed)
        return text

    def to_text(self) -> str:
        """The heading, the table, the note and the recommendation."""
        heading = (
            f"{Path(self.source).name} ({self.source_format}) on "
            f"{_device_heading(self.environment, self.device)}, batch {self.batch_size}"
        )
        lines = [heading, "", self.table()]
        checked = [e for e in self.entries if e.parity is not None]
        if checked:
            tolerances = sorted({e.tolerance for e in checked})
            within = " or ".join(f"{t:.0e}" for t in tolerances)
            lines.append(
                "Parity: each output's largest difference from the original's, over that "
                f"output's largest magnitude (ok within {within}); integer and boolean outputs "
                "must be equal"
            )
        if self.note:
            lines.append(self.note)
        lines.append(self.recommendation())
        if self.interrupted:
            lines.append("interrupted: the format running then was dropped")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every report in full."""
        data = super().to_dict()
        data["table"] = self.table()
        data["recommendation"] = self.recommendation()
        data["exit_code"] = self.exit_code
        return data

    JSON_WHAT = "formats result"
    JSON_ROOT = "formats"
    JSON_KIND = "pyinfer-formats"
    JSON_RERUN = "compare the formats again"


def _mean(entry: FormatEntry) -> float:
    assert entry.report is not None
    return entry.report.latency.stats.mean_ms


_TORCH_SOURCES = {"pytorch", "pytorch-legacy", "pickle"}
_KERAS_SOURCES = {"keras", "keras-h5"}


def _reachable(source_format: str) -> tuple[tuple[str, ...], str]:
    """The formats reachable from a source format (its own first) and a note on the rest."""
    if source_format in _TORCH_SOURCES:
        return ("eager", "torchscript", "torch-export", "onnx"), ""
    if source_format == "torchscript":
        return ("torchscript", "onnx"), (
            "from TorchScript: eager and torch.export need the Python module, not in the file"
        )
    if source_format == "torch-export":
        return ("torch-export", "torchscript", "onnx"), ""
    if source_format in _KERAS_SOURCES:
        return ("keras", "saved-model", "tflite"), ""
    if source_format == "saved-model":
        return ("saved-model", "tflite"), (
            "from a SavedModel: Keras is not reachable (the folder does not keep the Keras model)"
        )
    own = {"onnx": "onnx", "tflite": "tflite"}[source_format]
    return (own,), (
        f"nothing else is reachable from {'an ONNX' if own == 'onnx' else 'a TFLite'} file: "
        "pyinfer exports from torch modules and Keras models only"
    )


def _original_key(source_format: str) -> str:
    if source_format in _TORCH_SOURCES:
        return "eager"
    if source_format in _KERAS_SOURCES:
        return "keras"
    return source_format


@dataclass(frozen=True)
class _Parity:
    max_abs: float
    relative: float
    ok: bool
    output: str  # the output with the largest error (the first mismatching one, if any)
    detail: str  # on a mismatch: which output and how


def _exact(array: np.ndarray) -> bool:
    """Whether an output holds integers or booleans (compared exactly, not with a tolerance)."""
    return array.dtype.kind in "biu"


def _parity(
    expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], tolerance: float
) -> _Parity:
    """Compares every output with the original's, by name.

    A floating-point output matches when its largest absolute difference, relative to the
    original output's largest magnitude, is within ``tolerance`` (NaN where the original has NaN
    counts as equal); an integer or boolean output (class indices, masks) must be equal.
    Outputs are matched by name when both models name them alike, else by position (named as
    the original names them).

    Raises:
        InvalidArgumentError: If the output counts or shapes differ.
    """
    if set(expected) == set(got):
        pairs = [(k, expected[k], got[k]) for k in expected]
    elif len(expected) == len(got):
        pairs = [(k, a, b) for (k, a), b in zip(expected.items(), got.values(), strict=True)]
    else:
        raise InvalidArgumentError(
            f"{len(got)} outputs ({', '.join(got)}) against the original's {len(expected)} "
            f"({', '.join(expected)})"
        )
    worst_abs = worst_rel = 0.0
    worst_name, detail = "", ""
    for name, a, b in pairs:
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            raise InvalidArgumentError(
                f"output '{name}': shape {b_arr.shape} against the original's {a_arr.shape}"
            )
        if a_arr.size == 0:
            continue
        a64, b64 = a_arr.astype(np.float64), b_arr.astype(np.float64)
        both_nan = np.isnan(a64) & np.isnan(b64)
        diffs = np.where(both_nan, 0.0, np.abs(a64 - b64))
        diffs = np.where(np.isnan(diffs), np.inf, diffs)
        diff = float(np.max(diffs))
        if _exact(a_arr):
            differing = int(np.count_nonzero(diffs))
            rel = 0.0 if differing == 0 else math.inf
            problem = f"output '{name}': {differing} of {a_arr.size} values differ" * bool(
                differing
            )
        else:
            finite = np.abs(a64[np.isfinite(a64)])
            scale = max(float(np.max(finite)) if finite.size else 0.0, 1e-12)
            rel = diff / scale
            problem = (
                f"output '{name}': relative error {rel:.1e} over the tolerance {tolerance:.0e}"
                * (not rel <= tolerance)
            )
        if problem and not detail:
            detail, worst_name = problem, name
        if not detail and (rel > worst_rel or not worst_name):
            worst_name = name
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, rel)
    return _Parity(worst_abs, worst_rel, not detail, worst_name, detail)


def _export_name(fmt: str, stem: str) -> str:
    """The file (or folder) name of ``stem`` exported in ``fmt``."""
    return {
        "torchscript": f"{stem}.torchscript.pt",
        "torch-export": f"{stem}.pt2",
        "onnx": f"{stem}.onnx",
        "keras": f"{stem}.keras",
        "saved-model": f"{stem}_saved_model",
    }.get(fmt, f"{stem}.tflite")


def _export(fmt: str, source: Any, example: Any, target: Path) -> Path:
    """Writes ``source`` (a torch module, a Keras model or a SavedModel path) in ``fmt``."""
    from pyinfer import export

    if fmt == "torchscript":
        return export.export_torchscript(source, target, example)
    if fmt == "torch-export":
        return export.export_torch_program(source, target, example)
    if fmt == "onnx":
        return export.export_onnx(source, target, example)[0]
    if isinstance(source, Path):  # a SavedModel folder
        return export.export_saved_model_tflite(source, target)
    kind = {"saved-model": "saved_model"}.get(fmt, fmt)
    return export.export_keras(source, target, format=kind)


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files and their relative names."""
    sha = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        sha.update(str(file.relative_to(path) if file != path else "").encode())
        with file.open("rb") as handle:
            for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
                sha.update(chunk)
    return sha.hexdigest()


def _shape_dims(
    model: Any, input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None
) -> dict[str, int]:
    """Named dynamic dimensions of the inputs, sized from ``--input-shape``.

    A sequence sizes the first input, a mapping each input it names.
    """
    if not input_shape or not model.inputs:
        return {}
    if isinstance(input_shape, Mapping):
        given = [(s, input_shape[s.name]) for s in model.inputs if s.name in input_shape]
    else:
        given = [(model.inputs[0], input_shape)]
    dims: dict[str, int] = {}
    for spec, item in given:
        for dim, size in zip((spec.shape or ())[1:], item, strict=False):
            if isinstance(dim, str):
                dims[dim] = int(size)
    return dims


def compare_formats(
    path: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    formats: Sequence[str] | None = None,
    input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    work_dir: str | Path | None = None,
    quick: bool = False,
    settings: ProfilerSettings | None = None,
    trust_code: bool = False,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> FormatsResult:
    """Profiles a model in every format reachable from its framework, with output parity.

    The original is loaded with :func:`pyinfer.load_model`, exported to each other format with
    :mod:`pyinfer.export`, loaded back and profiled with the same settings; each one's outputs on
    the same random input are compared with the original's.

    Args:
        path: The model file (or SavedModel folder).
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: Items per call.
        formats: A subset of the reachable formats (default: all of them).
        input_shape: One item's shape (without the batch), for a torch module that does not
            describe its input, and to size named dynamic dimensions; for a model with several
            inputs, a mapping of input name to its item's shape.
        work_dir: Keep the exports here (default: a temporary folder, removed).
        quick: Use :func:`quick_settings`.
        settings: Explicit profiler settings (override ``quick``).
        trust_code: Allow loading code stored in the original (a pickled whole module, Keras
            Lambda layers, ...; runs code from the file). The exports are loaded without it.
        options: More options for loading the original with :func:`pyinfer.load_model`
            (``architecture`` for a state_dict, ``input_shapes``...); they win over
            ``input_shape``.
        progress: Called with a line per step.

    Returns:
        The result; a format that fails to export or load is recorded with its reason.

    Raises:
        ModelLoadError: If the original cannot be loaded (missing file, unknown format...).
        InvalidArgumentError: On a format not reachable from the model, or a bad option.
    """
    source = Path(path)
    fmt = pyinfer.detect_format(source)
    source_format = fmt.value
    reachable, note = _reachable(source_format)
    if formats:
        unknown = [f for f in formats if f not in FORMAT_CHOICES]
        if unknown:
            raise InvalidArgumentError(
                f"--formats: unknown format {', '.join(map(repr, unknown))}; use some of "
                + ", ".join(FORMAT_CHOICES)
            )
        unreachable = [f for f in formats if f not in reachable]
        if unreachable:
            raise InvalidArgumentError(
                f"--formats: {', '.join(unreachable)} not reachable from {source} "
                f"({source_format}); reachable: {', '.join(reachable)}"
            )
        chosen = [f for f in reachable if f in formats or f == reachable[0]]
    else:
        chosen = list(reachable)
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    prof = settings or (quick_settings() if quick else full_settings())
    no_throughput = quick and settings is None
    say = progress or (lambda line: logger.info("%s", line))
    start = time.perf_counter()
    load_options: dict[str, Any] = {"trust_code": True} if trust_code else {}
    if source_format in _TORCH_SOURCES | {"torchscript", "torch-export"}:
        if isinstance(input_shape, Mapping):
            load_options["input_shapes"] = {k: (None, *v) for k, v in input_shape.items()}
        elif input_shape:
            load_options["input_shapes"] = (None, *input_shape)
    load_options.update(options or {})
    entries: list[FormatEntry] = []
    interrupted = False
    stem = source.stem or "model"
    original_key = _original_key(source_format)

    def load(p: Path, key: str | None = None) -> Any:
        """The original (``key`` None) with the user's options; an export with what it needs."""
        extra = load_options if key is None else {}
        if key in {"torchscript", "torch-export"}:
            # A traced or exported module does not record its input shapes: the original's
            # (one input: by position, since tracing may rename it).
            shapes = {s.name: s.shape for s in original.inputs}
            one = next(iter(shapes.values())) if len(shapes) == 1 else None
            extra = {"input_shapes": one if one is not None else shapes}
        return pyinfer.load_model(p, device=device, name=stem, **extra)

    try:
        with _folder(Path(work_dir) if work_dir is not None else None) as folder:
            artifacts = _Artifacts(folder)
            t0 = time.perf_counter()
            original = load(source)
            exportable = original
            torch_source = source_format in _TORCH_SOURCES | {"torchscript", "torch-export"}
            if len(chosen) > 1 and (device != "cpu" or torch_source):
                # The exporters take the module as written: not on CUDA, and not the frozen,
                # oneDNN-optimised TorchScript that pyinfer runs (its mkldnn ops have no ONNX
                # form).
                plain: dict[str, Any] = (
                    {"freeze": False, "optimize": False, "channels_last": False}
                    if torch_source
                    else {}
                )
                exportable = pyinfer.load_model(
                    source, device="cpu", name=stem, **load_options, **plain
                )
            _check_batch(original, batch_size)
            dims = _shape_dims(original, input_shape)
            inputs = original.example_inputs(batch_size, seed=0, dims=dims)
            expected = original(inputs)
            load_s = time.perf_counter() - t0
            export_source: Any = (
                source
                if source_format == "saved-model"
                else getattr(exportable, "keras_model", None) or getattr(exportable, "module", None)
            )
            example = tuple(inputs[s.name] for s in exportable.inputs)
            versions = collect_environment().versions
            # An export is reused only from the same model file, inputs, options and versions.
            export_key = "|".join(
                [
                    f"source={_digest(source)}",
                    f"inputs={[tuple(np.shape(x)) for x in example]}",
                    f"options={sorted((k, repr(v)) for k, v in load_options.items())}",
                    ",".join(f"{k}={v}" for k, v in sorted(versions.items())),
                ]
            )
            prof = dataclasses.replace(prof, input_dims={**prof.input_dims, **dims})
            for number, key in enumerate(chosen, 1):
                label = _original_label(key, source_format) if key == original_key else None
                label = label or _FORMAT_ROW_LABELS[key]
                say(
                    f"[{number}/{len(chosen)}] {label} "
                    f"(elapsed {time.perf_counter() - start:.0f} s)"
                )
                entry = _format_entry(
                    key,
                    label,
                    original if key == original_key else None,
                    export_fn=functools.partial(
                        artifacts.get,
                        _export_name(key, stem),
                        f"{key}|{export_key}",
                        functools.partial(_export, key, export_source, example),
                    ),
                    load=functools.partial(load, key=key),
                    inputs=inputs,
                    expected=expected,
                    settings=prof,
                    batch_size=batch_size,
                    no_throughput=no_throughput,
                    prepare_s=load_s if key == original_key else 0.0,
                )
                if _export_name(key, stem) in artifacts.reused:
                    entry = dataclasses.replace(entry, reused=True)
                    say(f"[{number}/{len(chosen)}] reused {entry.path} (same model and versions)")
                entries.append(entry)
                say(f"[{number}/{len(chosen)}] {_done(entry)}")
            original.close()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: keeping the formats finished so far")
    environment = collect_environment(cuda_device=0 if device.startswith("cuda") else None)
    return FormatsResult(
        source=str(source),
        source_format=source_format,
        device=device,
        batch_size=batch_size,
        entries=tuple(entries),
        note=note,
        environment=environment,
        settings=_settings_dict(prof),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
    )


def _check_batch(model: Any, batch_size: int) -> None:
    """Refuses, before any export, a batch size that a fixed-batch model cannot run.

    Raises:
        InvalidArgumentError: Naming the input and its fixed batch.
    """
    if model.has_dynamic_batch:
        return
    first = next((s for s in model.inputs if s.shape and isinstance(s.shape[0], int)), None)
    if first is not None and first.shape[0] != batch_size:
        model.close()
        raise InvalidArgumentError(
            f"--batch-size {batch_size}: model '{model.name}' has a fixed batch size of "
            f"{first.shape[0]} (input {first}); use --batch-size {first.shape[0]}, or export it "
            "with a dynamic batch"
        )


def _original_label(key: str, source_format: str) -> str:
    if source_format == "keras-h5":
        return "Keras (h5)"
    return _FORMAT_ROW_LABELS[key]


def _format_entry(
    key: str,
    label: str,
    original: Any,
    *,
    export_fn: Callable[[], Path],
    load: Callable[[Path], Any],  # the format's loader
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    settings: ProfilerSettings,
    batch_size: int,
    no_throughput: bool,
    prepare_s: float,
) -> FormatEntry:
    """Exports, loads, checks and profiles one format; failures become the row's reason."""
    start = time.perf_counter()
    tolerance = PARITY_TOLERANCE_TFLITE if key == "tflite" else PARITY_TOLERANCE
    is_original = original is not None
    # The row's identity and its parity fields, shared by the failed and the measured row.
    base: dict[str, Any] = {
        "format": key,
        "label": label,
        "original": is_original,
        "tolerance": tolerance,
    }
    model = original
    path = ""
    try:
        if model is None:
            try:
                written = export_fn()
            except Exception as exc:
                raise _StageError("export failed", exc) from exc
            path = str(written)
            try:
                model = load(written)
            except Exception as exc:
                raise _StageError("load failed", exc) from exc
            prepare_s = time.perf_counter() - start
            try:
                # In the original's order: an export may name its inputs differently.
                check = _parity(expected, model(list(inputs.values())), tolerance)
                base.update(
                    max_abs_error=check.max_abs,
                    relative_error=check.relative,
                    parity=check.ok,
                    parity_output=check.output,
                    mismatch=check.detail,
                )
            except Exception as exc:
                raise _StageError("parity check failed", exc) from exc
        else:
            path = str(original.path or "")
        try:
            report = PerformanceProfiler(model, settings).profile(
                batch_size=batch_size, throughput=not no_throughput
            )
        except Exception as exc:
            raise _StageError("profiling failed", exc) from exc
    except _StageError as stage:
        return FormatEntry(
            **base,
            status=FAILED,
            path=path,
            reason=f"{stage.stage}: {_reason(stage.cause)}",
            elapsed_s=time.perf_counter() - start,
        )
    finally:
        if model is not None and not is_original:
            model.close()
    return FormatEntry(
        **base,
        status=OK,
        path=path,
        report=report,
        prepare_s=prepare_s,
        elapsed_s=time.perf_counter() - start,
    )


class _StageError(PyinferError):
    """A failure at one step of a format's row (export, load, parity, profiling)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage = stage
        self.cause = cause
