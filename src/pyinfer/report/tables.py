"""Tables: the standard box table, the format comparison table, the batch table and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.formatting import MB, format_ms, format_short, one_line
from pyinfer.report.results import BatchPoint

if TYPE_CHECKING:
    from pyinfer.report.records import BatchCurve, ProfileReport


def box_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    *,
    center_first: bool = False,
) -> str:
    """Cells separated by ``│``, a ``─``/``┼`` rule under the header (the standard table look).

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
    """The format comparison table (format x latency x throughput x memory): one row per report.

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


def batch_table(curve: BatchCurve, *, mark_unstable: bool = False) -> str:
    """The box table of a batch curve (see :meth:`BatchCurve.to_table`)."""
    header = ("Batch Size", "Latency (ms)", "Throughput (FPS)", "Batches/s (RPS)")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for p in curve.points:
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


def batch_csv(curve: BatchCurve) -> str:
    """One CSV row per batch size of ``curve``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f.name for f in fields(BatchPoint)]
    writer.writerow(names)
    for p in curve.points:
        writer.writerow(["" if getattr(p, n) is None else getattr(p, n) for n in names])
    return out.getvalue()
