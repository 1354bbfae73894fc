"""What a suite run and a format comparison produce: entries, results, their outcome and JSON."""

from __future__ import annotations

import enum
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfer.errors import as_out_of_memory
from pyinfer.report import MB, JsonRecord, ProfileReport, check_schema, one_line
from pyinfer.report.environment import Environment
from pyinfer.suite.busy import busy_warning
from pyinfer.suite.ratios import LatencyRatio
from pyinfer.suite.settings import FAILED, OK, PARITY_TOLERANCE, SKIPPED
from pyinfer.suite.tables import device_heading, parity_table, ratio_note, suite_tables

__all__ = [
    "BENCH_SCHEMA_VERSION",
    "TABLE_NAMES",
    "FormatEntry",
    "FormatsResult",
    "Outcome",
    "SuiteEntry",
    "SuiteResult",
    "failure_reason",
    "run_medians",
]

#: Version of the suite's and the format comparison's JSON layout (major: a field removed or
#: changed; minor: fields added; 1.1: a format's parity_output, mismatch and reused; 1.2: an
#: entry's latency ratio with its interval, and the outcome's name).
BENCH_SCHEMA_VERSION = "1.2"


#: The name of each table's model, as progress lines and warnings write an entry.
TABLE_NAMES = {
    "resnet50": "ResNet50",
    "resnet50-batch": "ResNet50",
    "bert": "BERT-Base seq",
    "mobilenetv2": "MobileNetV2",
}


def run_medians(report: ProfileReport) -> tuple[float, ...]:
    """A report's run medians in ms: one per repetition, or its one run's median."""
    if report.repetitions is not None:
        return tuple(run.median_ms for run in report.repetitions.runs)
    return (report.latency.stats.median_ms,)


class Outcome(enum.IntEnum):
    """How a suite run or a format comparison ended, the worst that happened.

    Each value is the exit status the ``pyinfer`` command gives for it with ``--strict``
    (without it, :attr:`UNSTABLE` warns and exits 0); the JSON records the value as
    ``exit_code`` and the name as ``outcome``.
    """

    OK = 0
    """Every entry measured, and stable."""
    FAILED = 1
    """An entry failed (or, comparing formats, its outputs differ from the original's)."""
    UNSTABLE = 3
    """Every entry measured, but one missed its stability or reproducibility target (the
    command warns and exits 0, or 3 with ``--strict``)."""
    INTERRUPTED = 130
    """Ctrl-C (or SIGTERM) stopped it; the entries finished before are kept."""


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
        prepare_s: Seconds the parent spent preparing the model (exporting its file); the
            worker's load is the report's cold start.
        elapsed_s: Seconds the whole entry took, its worker processes included.
        ratio: For ResNet50's formats, the latency against PyTorch eager on the same device,
            over the run medians, with its 95% interval.
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
    ratio: LatencyRatio | None = None

    @property
    def name(self) -> str:
        """The entry in words: ``ResNet50 ONNX (FP32)``, ``BERT-Base seq 128``."""
        return f"{TABLE_NAMES.get(self.table, self.table)} {self.label}"

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


def failure_reason(exc: BaseException) -> str:
    """One line: the error's type and message (terminal colour codes removed)."""
    oom = as_out_of_memory(exc)
    if oom is not None:
        return f"out of memory: {one_line(_ANSI.sub('', str(oom)))}"
    return f"{type(exc).__name__}: {one_line(_ANSI.sub('', str(exc)))}"


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
    def outcome(self) -> Outcome:
        """Interrupted, else failed if an entry failed, else unstable if one was, else ok."""
        if self.interrupted:
            return Outcome.INTERRUPTED
        if self.failed:
            return Outcome.FAILED
        return Outcome.UNSTABLE if self.unstable else Outcome.OK

    @property
    def exit_code(self) -> int:
        """The exit status of :attr:`outcome` with ``--strict``: 130, 1, 3 or 0."""
        return int(self.outcome)

    def tables(self) -> list[tuple[str, str, str]]:
        """Every table as (section title, device heading, box table with its footnotes)."""
        return suite_tables(self.entries, self.environments)

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
        runs = _runs(self.settings)
        each = f"; {runs} runs of each in fresh processes" if runs > 1 else ""
        text = ", ".join(parts) + f"{each}; wall time {self.wall_s:.1f} s"
        if self.interrupted:
            dropped = "the entry running then" if runs == 1 else "the run going on then"
            text += f" (interrupted: {dropped} was dropped)"
        busy = busy_warning(self.busy_cpus)
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
        data["outcome"] = self.outcome.name.lower()
        return data

    def rows(self) -> list[dict[str, Any]]:
        """The tables' rows as figures: one per entry, one per batch size of the sweep.

        Each row has the table, device, row name, status (and reason), latency mean and median
        in ms, throughput in items per second, memory in MB (parameters plus peak activation),
        whether it was stable, and for ResNet50's formats the latency ratio to PyTorch eager
        with its 95% interval; figures are ``None`` where not measured.
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
                            **_ratio_fields(None),
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
                    **_ratio_fields(e.ratio),
                }
            )
        return out

    JSON_WHAT = "suite result"
    JSON_ROOT = "suite"
    JSON_KIND = "pyinfer-bench-suite"
    JSON_RERUN = "run the suite again"


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
        prepare_s: Seconds the parent spent loading (the original) or exporting it; the
            worker's load is the report's cold start.
        elapsed_s: Seconds the whole row took, its worker processes included.
        reused: Whether the export was reused from the work folder (written by an earlier run
            from the same model file, inputs, options and versions).
        ratio: The latency against the original's, over the run medians, with its 95%
            interval (``None`` for the original and unmeasured rows).
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
    ratio: LatencyRatio | None = None

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
    def outcome(self) -> Outcome:
        """Interrupted, else failed if a format failed or mismatched, else unstable, else ok."""
        if self.interrupted:
            return Outcome.INTERRUPTED
        if any(e.status == FAILED or e.parity is False for e in self.entries):
            return Outcome.FAILED
        if any(e.status == OK and not e.stable for e in self.entries):
            return Outcome.UNSTABLE
        return Outcome.OK

    @property
    def exit_code(self) -> int:
        """The exit status of :attr:`outcome` with ``--strict``: 130, 1, 3 or 0."""
        return int(self.outcome)

    def table(self) -> str:
        """The comparison table with its Parity column."""
        return parity_table(self.entries)

    def recommendation(self) -> str:
        """One line: the fastest format whose outputs match, against the original."""
        measured = [e for e in self.entries if e.report is not None and e.parity is not False]
        mismatched = [f"{e.label} ({e.mismatch})" for e in self.entries if e.parity is False]
        failed = [e.label for e in self.entries if e.status == FAILED]
        if not measured:
            return "no format was measured"
        best = min(measured, key=_median)
        original = next((e for e in self.entries if e.original and e.report is not None), None)
        text = f"fastest at batch {self.batch_size}: {best.label}"
        if original is not None and best is not original:
            # Medians, as the ratio column: one stall moves a mean, not a median.
            text += f", {_median(original) / _median(best):.2f}x {original.label}"
            ratio = best.ratio
            if ratio is not None and ratio.low is not None and ratio.high is not None:
                noise = ratio.low <= 1.0 <= ratio.high
                text += (
                    " (not told apart from run-to-run noise: its latency ratio's 95% interval "
                    "includes 1)"
                ) * noise
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
            f"{device_heading(self.environment, self.device)}, batch {self.batch_size}"
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
        ratios = ratio_note(self.entries, "the original's")
        if ratios:
            lines.append(ratios)
        if self.note:
            lines.append(self.note)
        lines.append(self.recommendation())
        if self.interrupted:
            dropped = "format" if _runs(self.settings) == 1 else "run"
            lines.append(f"interrupted: the {dropped} running then was dropped")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every report in full."""
        data = super().to_dict()
        data["table"] = self.table()
        data["recommendation"] = self.recommendation()
        data["exit_code"] = self.exit_code
        data["outcome"] = self.outcome.name.lower()
        return data

    JSON_WHAT = "formats result"
    JSON_ROOT = "formats"
    JSON_KIND = "pyinfer-formats"
    JSON_RERUN = "compare the formats again"


def _ratio_fields(ratio: LatencyRatio | None) -> dict[str, float | None]:
    """A row's latency ratio and its interval's ends (``None`` where there is none)."""
    return {
        "latency_ratio": ratio.ratio if ratio else None,
        "latency_ratio_low": ratio.low if ratio else None,
        "latency_ratio_high": ratio.high if ratio else None,
    }


def _runs(settings: dict[str, Any]) -> int:
    """The runs of each entry the recorded settings asked for (1 in files before 1.2)."""
    runs = settings.get("repetitions", 1)
    return runs if isinstance(runs, int) and not isinstance(runs, bool) else 1


def _median(entry: FormatEntry) -> float:
    assert entry.report is not None
    return entry.report.latency.stats.median_ms
