"""A report as text and Markdown: the standard report layout, its Details block, Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pyinfer.report.formatting import format_mb, format_mb_or_na, format_ms, md_cell
from pyinfer.report.stats import median_ci_relative, min_samples_for_percentile

if TYPE_CHECKING:
    from pyinfer.report.records import ProfileReport
    from pyinfer.report.repetitions import Repetitions, RunSummary
    from pyinfer.report.results import LatencyStats

_NOT_MEASURED = "run-to-run variation not measured"


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
    """The standard report layout, line for line (shared by reports and ``pyinfer demo``).

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


def tail_percentiles(s: LatencyStats) -> tuple[float, float, float, float]:
    """P90, P95, P99 and P99.9, in ms."""
    return s.p90_ms, s.p95_ms, s.p99_ms, s.p999_ms


def report_text(report: ProfileReport) -> str:
    """The report in the standard layout, then a separate ``Details`` block."""
    memory = None
    if report.memory is not None:
        m = report.memory
        total_label, total_value = m.total
        # No stored weights: say so, or 0.0 MB reads as a failed measurement.
        none = " (no stored weights: made at run time, or none)" if m.parameter_bytes == 0 else ""
        memory = [
            ("Model Parameters", f"{format_mb(m.parameter_bytes)} MB{none}"),
            ("Peak Activation", format_mb_or_na(m.peak_activation_bytes)),
            (total_label, format_mb_or_na(total_value)),
        ]
    lines = format_results(
        model=report.model,
        device=report.device_name,
        input_shape=report.input_shape_text,
        iterations=report.latency.stats.count,
        warmup=report.latency.warmup_iterations,
        stats=report.latency.stats,
        memory=memory,
        throughput_fps=report.throughput_fps,
    )
    return "\n".join([*lines, "", *details(report)])


def details(report: ProfileReport) -> list[str]:
    """The ``Details`` block: what the standard layout leaves out, one line each."""
    lat, s = report.latency, report.latency.stats
    out = ["Details:", "--------"]
    out.append(f"  Stability: {lat.stability_reason}")
    ci = median_ci_relative(np.asarray(lat.samples_ns)) if lat.samples_ns else math.inf
    pooled = report.repetitions is not None and report.repetitions.count > 1
    # With runs, the calls' interval says how well the pooled calls pin the median, not how a
    # repeat would land: that is the between-run interval of the lines after it.
    within = " over the pooled calls (between runs: below)" if pooled else ""
    out.append(f"  Median 95% CI: +-{ci * 100:.2f}%{within}   Std/mean: {s.std_percent:.1f}%")
    out += repetition_lines(report)
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
    if report.arithmetic is not None:
        out.append(f"  Arithmetic: {report.arithmetic.line(s.median_ms)}")
    if lat.host_mean_ms is not None:
        out.append(f"  Host end-to-end: {format_ms(lat.host_mean_ms)} ms per call")
    warm = f"  Warm-up: {lat.warmup_iterations} calls"
    if lat.warmup_settled is not None:
        warm += ", settled" if lat.warmup_settled else ", did NOT settle"
    out.append(warm)
    cold = report.cold_start
    out.append(
        "  Cold start: load "
        + ("n/a" if cold.load_time_s is None else f"{cold.load_time_s:.3f} s")
        + ", first inference "
        + ("n/a" if cold.first_inference_ms is None else f"{format_ms(cold.first_inference_ms)} ms")
    )
    if report.throughput is not None:
        t = report.throughput
        out.append(
            f"  Throughput run: {t.fps:.1f} items/s (FPS), {t.rps:.1f} batches/s (RPS), "
            f"batch {t.batch_size}, {t.calls} calls in {t.wall_s:.2f} s"
        )
        out.append(f"  GPU utilisation: {t.gpu_utilization.text()}")
        if t.energy is not None:
            out.append(f"  {t.energy.line()}")
    else:
        # An interrupted (or throughput=False) profile: the figure is the latency run's.
        out.append(
            "  Throughput: no throughput run; the figure above is the latency run's (batch "
            f"{report.latency.batch_size} x {report.latency.iterations} calls over its wall time)"
        )
    if report.memory is not None:
        out.append(f"  Peak activation method: {report.memory.activation_method}")
    if report.batch_curve is not None and report.batch_curve.knee_batch_size is not None:
        out.append(f"  Knee of the batch curve: batch {report.batch_curve.knee_batch_size}")
        out.append(f"  Best batch: {report.batch_curve.best_reason}")
    out += noise_lines(report)
    out += [f"  Warning: {line}" for line in report.environment.concurrent_measurements]
    return out


def noise_lines(report: ProfileReport) -> list[str]:
    """The ``Details`` lines on the machine's load while the latency was measured.

    A ``Machine load`` line with the figures, then one ``Warning`` line per reason the run was
    noisy; nothing for a report without a reading.
    """
    reading = report.noise
    if reading is None:
        return []
    return [
        f"  Machine load: {reading.summary()}",
        *(f"  Warning: {reason}" for reason in reading.reasons),
    ]


def _run_median(run: RunSummary) -> str:
    """A run's median, marked ``~`` when the run missed its own stability target."""
    return format_ms(run.median_ms) + ("" if run.stable else "~")


def _between_runs(reps: Repetitions) -> tuple[str, str] | None:
    """The between-run interval and reproducibility as text (``None`` with fewer than 2 runs).

    ``("median 95% interval A-B ms", "reproducible within +-X% (target Y%): yes")``.
    """
    low, high, reproducibility = reps.interval_low_ms, reps.interval_high_ms, reps.reproducibility
    if low is None or high is None or reproducibility is None:
        return None
    return (
        f"median 95% interval {format_ms(low)}-{format_ms(high)} ms",
        f"reproducible within +-{reproducibility * 100:.1f}% (target "
        f"{reps.reproducibility_target * 100:g}%): " + ("yes" if reps.reproducible else "NO"),
    )


def _runs(reps: Repetitions) -> str:
    if reps.in_one_process:
        return f"{reps.count} in one process"
    return f"{reps.count} in {'a fresh process' if reps.count == 1 else 'fresh processes'}"


def _spread(reps: Repetitions) -> str:
    cv = "" if reps.cv_percent is None else f", CV {reps.cv_percent:.1f}%"
    return f"spread {reps.spread:.2f}x{cv}"


def repetition_lines(report: ProfileReport) -> list[str]:
    """The Details lines on the runs: each run's median, the between-run figures, the verdict.

    Without repetitions, one line saying that run-to-run variation was not measured.
    """
    reps = report.repetitions
    if reps is None:
        return [f"  Runs: 1, in this process: {_NOT_MEASURED} (--repeat N measures it)"]
    unstable = "" if reps.within_run_stable else " (~: the run missed its own stability target)"
    lines = [
        f"  Runs: {_runs(reps)}; {'median' if reps.count == 1 else 'medians'} "
        f"{' '.join(_run_median(r) for r in reps.runs)} ms{unstable}"
    ]
    between = _between_runs(reps)
    if between is None:
        return [*lines, f"  Between runs: {_NOT_MEASURED} with one run (--repeat N measures it)"]
    interval, reproducible = between
    return [
        *lines,
        f"  Between runs: {_spread(reps)}; {interval} ({reps.method})",
        f"  {reproducible[0].upper()}{reproducible[1:]}",
    ]


def _runs_cell(report: ProfileReport) -> str:
    """The Markdown report's ``Runs`` value."""
    reps = report.repetitions
    if reps is None:
        return f"1, in this process: {_NOT_MEASURED}"
    between = _between_runs(reps)
    if between is None:
        return f"{_runs(reps)}: {_NOT_MEASURED}"
    interval, reproducible = between
    return f"{_runs(reps)}: {interval}, {_spread(reps)}; {reproducible}"


def report_markdown(report: ProfileReport) -> str:
    """The report as Markdown: a heading, a metrics table, the batch table if any."""
    s = report.latency.stats
    unsupported = s.unsupported_percentiles
    rough = f" (too few samples for {', '.join(unsupported)}: rough)" if unsupported else ""
    rows = [
        ("Device", report.device_name),
        ("Input shape", report.input_shape_text),
        ("Iterations", f"{s.count} ({report.latency.warmup_iterations} warmup)"),
        ("Mean", f"{format_ms(s.mean_ms)} ms"),
        ("Median", f"{format_ms(s.median_ms)} ms"),
        ("Std", f"{format_ms(s.std_ms)} ms ({s.std_percent:.1f}%)"),
        ("Min / Max", f"{format_ms(s.min_ms)} / {format_ms(s.max_ms)} ms"),
        (
            "P90 / P95 / P99 / P99.9",
            " / ".join(format_ms(v) for v in tail_percentiles(s)) + " ms" + rough,
        ),
        ("Throughput", f"{report.throughput_fps:.1f} FPS"),
    ]
    if report.throughput is not None and report.throughput.energy is not None:
        rows.append(("Energy", report.throughput.energy.text()))
    if report.memory is not None:
        rows.append(("Model parameters", f"{format_mb(report.memory.parameter_bytes)} MB"))
        if report.memory.peak_activation_bytes is not None:
            rows.append(("Peak activation", f"{format_mb(report.memory.peak_activation_bytes)} MB"))
    rows.append(("Runs", _runs_cell(report)))
    rows.append(("Stable", f"{'yes' if report.stable else 'NO'}: {report.stability_reason}"))
    lines = [f"## {report.model} ({report.label})", "", "| Metric | Value |", "|---|---|"]
    lines += [f"| {k} | {md_cell(v)} |" for k, v in rows]
    if report.batch_curve is not None:
        lines += ["", "| Batch size | Latency (ms) | Throughput (FPS) |", "|---:|---:|---:|"]
        for p in report.batch_curve.points:
            if p.ok and p.latency_mean_ms is not None and p.throughput_fps is not None:
                mark = " (interrupted, not stable)" if p.interrupted else ""
                lines.append(
                    f"| {p.batch_size}{mark} | {format_ms(p.latency_mean_ms)} | "
                    f"{p.throughput_fps:.1f} |"
                )
            else:
                lines.append(f"| {p.batch_size} | failed: {md_cell(p.error)} | |")
    return "\n".join(lines) + "\n"
