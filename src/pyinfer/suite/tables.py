"""The suite's and the format comparison's tables, with the layout and widths users expect.

Row names keep the first column at 16 characters; an unstable figure is marked ``~`` and a
failed or skipped row says why, its whole reason as a note under the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyinfer.report import MB, ProfileReport, box_table, format_ms, format_short
from pyinfer.report.environment import Environment
from pyinfer.suite.ratios import min_runs_for_interval
from pyinfer.suite.settings import OK, SUITE_MODELS

if TYPE_CHECKING:
    from pyinfer.suite.results import FormatEntry, SuiteEntry

__all__ = ["device_heading", "done_line", "parity_table", "ratio_note", "suite_tables"]

#: How much of a failed row's reason fits its cell; the whole reason goes under the table.
_REASON_WIDTH = 32


def _status_cell(status: str, reason: str) -> str:
    """A failed or skipped row's cell: the reason's first part; the whole one goes below."""
    if len(reason) <= _REASON_WIDTH:
        return f"{status}: {reason}"
    return f"{status}: {reason.split(':', 1)[0][:_REASON_WIDTH]}"


def device_heading(environment: Environment, device: str) -> str:
    """A table's device heading: ``CPU (model, N cores)`` or ``GPU (name, NGB)``."""
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


def suite_tables(
    entries: Sequence[SuiteEntry], environments: dict[str, Environment]
) -> list[tuple[str, str, str]]:
    """Every table of the suite as (section title, device heading, box table with its notes)."""
    out: list[tuple[str, str, str]] = []
    devices = list(dict.fromkeys(e.device for e in entries))
    for model in SUITE_MODELS:
        for device in devices:
            env = environments.get(device)
            heading = device_heading(env, device) if env is not None else device
            rows = [e for e in entries if e.device == device]
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


def parity_table(entries: Sequence[FormatEntry]) -> str:
    """The format comparison's table with its Latency ratio and Parity columns."""
    header = (
        "Model Format",
        "Latency (ms)",
        "Throughput (FPS)",
        "Memory (MB)",
        "Latency ratio",
        "Parity",
    )
    rows = []
    for e in entries:
        if e.report is not None:
            r = e.report
            ratio = "1.00x" if e.original else (e.ratio.text() if e.ratio else "-")
            rows.append(
                (
                    e.label,
                    _latency(e),
                    f"{r.throughput_fps:.1f}",
                    _memory_mb(r),
                    ratio,
                    e.parity_text(),
                )
            )
        else:
            rows.append((e.label, "-", "-", "-", "-", _status_cell(e.status, e.reason)))
    table = box_table(header, rows, widths=(16, 14, 18, 13, 19, 12))
    return _with_notes(table, _footnotes(entries))


def ratio_note(entries: Sequence[SuiteEntry | FormatEntry], against: str) -> str:
    """What the latency ratios are, and why some have no interval (empty: no ratio shown)."""
    ratios = [e.ratio for e in entries if e.ratio is not None]
    if not ratios:
        return ""
    text = (
        f"Latency ratio: the latency over {against}, estimated from the runs' medians "
        "(fresh processes, interleaved), with its 95% interval"
    )
    fewest = min(min(r.runs, r.reference_runs) for r in ratios)
    if any(not r.has_interval for r in ratios):
        text += (
            f"; no interval from {fewest} run(s) a side: it needs --repeat "
            f"{min_runs_for_interval()} or more"
        )
    return text


def _footnotes(entries: Sequence[SuiteEntry | FormatEntry]) -> list[str]:
    notes = []
    if any(e.status == OK and not e.stable for e in entries):
        notes.append(
            "~ not stable: the figure missed its stability or reproducibility target (see the JSON)"
        )
    for e in entries:
        if e.status != OK and len(e.reason) > _REASON_WIDTH:
            notes.append(f"{e.label}: {e.status}: {e.reason}")
    return notes


def _with_notes(table: str, notes: Sequence[str]) -> str:
    return "\n".join([table, *notes])


def _latency(entry: SuiteEntry | FormatEntry) -> str:
    """The Latency cell: the mean in ms, with ``~`` when the measurement was not stable.

    The mark goes on the figure, not the row name, so that it never widens the first column
    past its 16 characters.
    """
    assert entry.report is not None
    mark = "" if entry.stable else "~"
    return format_short(entry.report.latency.stats.mean_ms) + mark


#: The smallest memory the Memory (MB) column prints as a figure (1 kB); less prints ``<0.001``.
MIN_MEMORY_MB = 0.001


def _memory_mb(report: ProfileReport) -> str:
    m = report.memory
    if m is None:
        return "-"
    megabytes = (m.parameter_bytes + (m.peak_activation_bytes or 0)) / MB
    if megabytes < MIN_MEMORY_MB:
        return f"<{MIN_MEMORY_MB:g}"  # 0.000229 MB reads as noise; it is under 1 kB
    return f"{megabytes:.0f}" if megabytes >= 10 else format_short(megabytes)


def _formats_table(entries: Sequence[SuiteEntry]) -> str:
    """ResNet50's table of formats; failed and skipped rows say why in the last column.

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
    notes = _footnotes(entries)
    compared = [e for e in entries if e.ratio is not None]
    if compared:
        reference = compared[0].ratio.reference if compared[0].ratio else ""
        figures = ", ".join(f"{e.label} {e.ratio.text()}" for e in compared if e.ratio)
        notes.append(f"Latency against {reference}: {figures}")
        notes.append(ratio_note(compared, reference + "'s"))
    return _with_notes(box_table(header, rows, widths=(16, 14, 18, 12)), notes)


def _batch(entry: SuiteEntry) -> str:
    if entry.report is None or entry.report.batch_curve is None:
        return f"{entry.label}: {entry.status}: {entry.reason}"
    curve = entry.report.batch_curve
    notes = []
    unstable = [str(p.batch_size) for p in curve.points if p.stable is False]
    if unstable:
        notes.append(
            f"~ not stable at batch {', '.join(unstable)}: the stability or reproducibility "
            "target was not met (see the JSON)"
        )
    return _with_notes(curve.to_table(mark_unstable=True), notes)


_SMALL_HEADERS = {
    "bert": (("Sequence Length", "Latency (ms)", "Throughput (seq/s)"), (16, 14, 19)),
    "mobilenetv2": (("Input Size", "Latency (ms)", "Throughput (FPS)"), (15, 14, 17)),
}


def _small_table(model: str, entries: Sequence[SuiteEntry]) -> str:
    """BERT's and MobileNetV2's tables, with their fixed headers and widths."""
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


def done_line(entry: SuiteEntry | FormatEntry) -> str:
    """The progress line of a finished entry: its latency and throughput, or why it failed."""
    if entry.report is None:
        return f"{entry.label}: {entry.status}: {entry.reason}"
    r = entry.report
    runs = f", {r.repetitions.count} runs" if r.repetitions is not None else ""
    stable = "" if entry.stable else ", not stable"
    return (
        f"{entry.label}: {format_ms(r.latency.stats.mean_ms)} ms, {r.throughput_fps:.1f}/s"
        f"{runs}{stable} ({entry.elapsed_s:.1f} s)"
    )
