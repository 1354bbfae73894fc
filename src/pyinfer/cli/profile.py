"""``pyinfer profile`` and ``pyinfer sweep``: measure a model and write its reports."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli import ops
from pyinfer.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNSTABLE,
    check_outputs,
    write_output,
    write_plot,
)
from pyinfer.cli.model_args import (
    add_input_options,
    given_from_args,
    input_shapes,
    load_from_args,
    parse_spec,
)
from pyinfer.cli.parser import (
    add_command,
    add_model_options,
    add_report_files,
    add_timing_options,
    int_list,
    positive_float,
    positive_int,
)
from pyinfer.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.profiling import PerformanceProfiler
    from pyinfer.report import BatchCurve, ProfileReport

__all__ = ["add_parser", "cmd_profile", "cmd_sweep", "profiler_settings"]


def profiler_settings(args: argparse.Namespace, input_dims: dict[str, int]) -> Any:
    """``ProfilerSettings`` from the measurement options.

    With ``--repeat N`` above 1, the default minimum time, time cap, minimum count and target
    are spread over the N runs (:meth:`ProfilerSettings.spread_over`); the options given
    explicitly apply to each run as given.
    """
    import dataclasses

    from pyinfer.profiling import ProfilerSettings

    base = ProfilerSettings(
        input_dims=input_dims,
        stability_metric=args.stability_metric,
        throughput_time_s=args.throughput_time,
        cpus=tuple(args.cpus or ()),
    ).spread_over(args.repeat)
    kwargs: dict[str, Any] = {}
    if args.warmup is not None:
        kwargs["warmup_iterations"] = args.warmup
    if args.iterations is not None:
        kwargs.update(
            min_iterations=args.iterations,
            max_iterations=args.iterations,
            min_time_s=0.0,
            max_time_s=math.inf,
        )
    if args.min_time is not None:
        kwargs["min_time_s"] = args.min_time
        if args.max_time is None:  # a minimum past the default cap moves the cap with it
            kwargs["max_time_s"] = max(base.max_time_s, args.min_time)
    if args.max_time is not None:
        kwargs["max_time_s"] = args.max_time
    if args.stability is not None:
        kwargs["stability_target"] = args.stability
    return dataclasses.replace(base, **kwargs)


def _profiler(args: argparse.Namespace) -> tuple[PerformanceProfiler, int | None]:
    from pyinfer.profiling import PerformanceProfiler

    if args.iterations is not None and args.max_time is not None:
        raise InvalidArgumentError(
            "--iterations N times exactly N calls; it cannot be combined with --max-time"
        )
    model = load_from_args(args)
    arrays, values = given_from_args(args, model)
    given = set(arrays) | {n for n, v in values.items() if isinstance(v, (int, float))}
    dims, batch = input_shapes(args.input_shape, model, getattr(args, "batch_size", None), given)
    settings = dataclasses.replace(
        profiler_settings(args, dims), inputs=arrays, input_values=values
    )
    return PerformanceProfiler(model, settings), batch


def _unstable_note(command: str, reason: str, strict: bool) -> None:
    verdict = reason if reason.startswith("NOT stable") else f"NOT stable: {reason}"
    status = "exit status 3 (--strict)" if strict else "exit status 0 (--strict makes it 3)"
    sys.stderr.write(
        f"warning: pyinfer {command}: {verdict}; the figures above are what was measured: "
        f"give it more time (--max-time), more runs (--repeat) or a quieter machine; {status}\n"
    )


def _unstable_status(unstable: bool, args: argparse.Namespace) -> int:
    """A measurement that missed its targets warns; only ``--strict`` fails the command."""
    return EXIT_UNSTABLE if unstable and args.strict else EXIT_OK


def _interrupted_note(written: list[Path], have: bool) -> None:
    if written:
        where = "written to " + ", ".join(str(p) for p in written)
    else:
        where = "printed above" if have else "none: nothing was measured yet"
    sys.stderr.write(f"interrupted: results so far {where}\n")


def _write_report(report: ProfileReport, args: argparse.Namespace) -> list[Path]:
    written = []
    for path, render, what in (
        (args.json, report.to_json, "JSON report"),
        (args.csv, report.to_csv, "CSV report"),
        (args.markdown, report.to_markdown, "Markdown report"),
    ):
        if path:
            written.append(write_output(path, render(), what))
    if args.plot:
        plot = Path(args.plot)
        written.append(write_plot(report.plot_latency, plot, "latency plot"))
        curve = report.batch_curve
        if curve is not None and curve.measured:
            batches = plot.with_name(f"{plot.stem}_batches{plot.suffix}")
            draw = functools.partial(curve.plot, title=report.model)
            written.append(write_plot(draw, batches, "batch curve plot"))
    return written


def _curve_unstable(curve: BatchCurve | None) -> list[int]:
    if curve is None:
        return []
    return [p.batch_size for p in curve.points if p.ok and p.stable is False]


def cmd_profile(args: argparse.Namespace) -> int:
    """Profiles a model: latency, memory, throughput, optionally a batch sweep; writes reports."""
    if args.latency_budget is not None and not args.batch_sizes:
        raise InvalidArgumentError("--latency-budget chooses among --batch-sizes; give them too")
    check_outputs(args.json, args.csv, args.markdown, plot=args.plot)
    profiler, batch = _profiler(args)
    try:
        report = profiler.profile(
            batch,
            batch_sizes=args.batch_sizes,
            latency_budget_ms=args.latency_budget,
            memory=not args.no_memory,
        )
    except KeyboardInterrupt as exc:
        partial: ProfileReport | None = getattr(exc, "partial_result", None)
        written: list[Path] = []
        if partial is not None:
            _print_report(partial)
            _noise_note(partial)
            written = _write_report(partial, args)
        _interrupted_note(written, partial is not None)
        return EXIT_INTERRUPTED
    report = ops.with_arithmetic(report, profiler.model)
    _print_report(report)
    if args.ops:
        # The shapes the profile ran: its batch and its named dimensions' sizes.
        ops.operator_section(profiler.model, report.batch_size, dims=profiler.settings.input_dims)
    _noise_note(report)
    _write_report(report, args)
    unstable = _curve_unstable(report.batch_curve)
    if not report.stable:
        _unstable_note("profile", report.stability_reason, args.strict)
    if unstable:
        _unstable_note(
            "profile", f"the sweep's batch size(s) {unstable} did not settle", args.strict
        )
    return _unstable_status(not report.stable or bool(unstable), args)


def _noise_note(report: ProfileReport) -> None:
    """Warns on stderr when other load overlapped the latency measurement (with its figures)."""
    from pyinfer.report.noise import noise_warning

    warning = noise_warning(report.noise)
    if warning:
        sys.stderr.write(warning + "\n")


def _print_report(report: ProfileReport) -> None:
    text = report.to_text()
    if report.batch_curve is not None:
        text += "\n\n" + report.batch_curve.to_table()
    sys.stdout.write(text + "\n")


def _curve_text(curve: BatchCurve) -> str:
    lines = [curve.to_table(), ""]
    if curve.knee_batch_size is not None:
        lines.append(
            f"Knee: batch {curve.knee_batch_size} (the smallest reaching 90% of the best "
            "throughput)"
        )
    lines.append(f"Best batch: {curve.best_reason}")
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Latency and throughput at each batch size: the batch table, the knee, the best batch."""
    check_outputs(args.json, args.csv, plot=args.plot)
    profiler, batch = _profiler(args)
    model = profiler.model
    if not model.has_dynamic_batch:
        raise InvalidArgumentError(
            f"model '{model.name}' has a fixed batch size ({model.inputs[0]}); a batch sweep "
            "needs a dynamic batch dimension"
        )
    if batch is not None and not any(parse_spec(t).dims is not None for t in args.input_shape):
        raise InvalidArgumentError(
            "--input-shape sets the batch size, which a sweep takes from --batch-sizes; give "
            "the named dimensions only (sequence=128)"
        )
    # A whole shape's batch axis is the batch, which each point of the sweep sets.
    sys.stdout.write(f"Model: {model.name} ({model.format.value} on {model.device})\n")
    interrupted = False
    try:
        curve = profiler.sweep_batch_sizes(args.batch_sizes, args.latency_budget)
    except KeyboardInterrupt as exc:
        partial: BatchCurve | None = getattr(exc, "partial_result", None)
        if partial is None:
            _interrupted_note([], False)
            return EXIT_INTERRUPTED
        curve, interrupted = partial, True
    sys.stdout.write(_curve_text(curve) + "\n")
    written: list[Path] = []
    if args.json:
        from pyinfer.profiling import sweep_report

        report = sweep_report(profiler, curve, interrupted=interrupted)
        written.append(write_output(args.json, report.to_json() + "\n", "sweep report"))
    if args.csv:
        written.append(write_output(args.csv, curve.to_csv(), "batch curve CSV"))
    if args.plot and curve.measured:
        draw = functools.partial(curve.plot, title=model.name)
        written.append(write_plot(draw, Path(args.plot), "batch curve plot"))
    if interrupted:
        _interrupted_note(written, True)
        return EXIT_INTERRUPTED
    if not curve.measured:
        return EXIT_FAILED
    unstable = _curve_unstable(curve)
    if unstable:
        _unstable_note("sweep", f"batch size(s) {unstable} did not settle", args.strict)
    return _unstable_status(bool(unstable), args)


def add_parser(commands: Any) -> None:
    """Adds ``profile`` and ``sweep`` to the ``pyinfer`` subcommands."""
    profile = add_command(
        commands,
        "profile",
        "measure latency, memory and throughput",
        "Profiles a model: a memory pass, latency (warm-up, then calls until the median is "
        "stable or a cap is hit), throughput and, with --batch-sizes, a batch sweep. Prints the "
        "report in the standard layout (latency statistics, memory, throughput). The latency is "
        "measured in --repeat fresh processes (default 5), so the report says how reproducible "
        "it is. A measurement that missed its stability or reproducibility target warns and "
        "exits 0 (status 3 with --strict); Ctrl-C prints and writes what was measured and "
        "exits 130.",
        [
            "pyinfer profile resnet50.onnx --batch-size 8 --json r.json",
            "pyinfer profile bert.onnx --input-shape sequence=128 --iterations 500",
            "pyinfer profile resnet50.pt --input-shape 1x3x224x224 --option num_threads=1",
            "pyinfer profile mlp.pt2 --batch-sizes 1,8,64 --latency-budget 5 --plot mlp.png",
            "pyinfer profile vad.onnx --inputs audio.npz --input-value sr=16000",
        ],
        handler=cmd_profile,
    )
    profile.add_argument("model", help="the model file (or SavedModel folder)")
    profile.add_argument("--batch-size", type=positive_int, help="items per call (default 1)")
    profile.add_argument(
        "--batch-sizes", type=int_list, metavar="LIST", help="also sweep these: 1,2,4,8"
    )
    profile.add_argument(
        "--latency-budget", type=positive_float, metavar="MS", help="P95 budget for the sweep"
    )
    profile.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    profile.add_argument(
        "--ops", action="store_true", help="then count MACs and time each operator (pyinfer ops)"
    )
    add_model_options(profile)
    add_timing_options(profile)
    add_input_options(profile)
    add_report_files(profile)

    sweep = add_command(
        commands,
        "sweep",
        "latency and throughput against batch size",
        "Measures latency and throughput at each batch size and prints the batch table, the "
        "knee (the smallest batch reaching 90% of the best throughput) and the best batch "
        "(under --latency-budget on P95, if given). Out of memory ends the sweep, shown in the "
        "table. Each of the --repeat runs (default 5) sweeps in a fresh process; a point is "
        "the median of its runs. A point that missed its targets warns (exit status 3 with "
        "--strict).",
        [
            "pyinfer sweep resnet50.onnx --batch-sizes 1,2,4,8,16,32",
            "pyinfer sweep mlp.onnx --batch-sizes 1,8,64 --latency-budget 2 --json curve.json",
        ],
        handler=cmd_sweep,
    )
    sweep.add_argument("model", help="the model file (or SavedModel folder)")
    sweep.add_argument(
        "--batch-sizes", type=int_list, metavar="LIST", required=True, help="such as 1,2,4,8"
    )
    sweep.add_argument(
        "--latency-budget", type=positive_float, metavar="MS", help="P95 budget for the best"
    )
    add_model_options(sweep)
    add_timing_options(sweep)
    add_input_options(sweep)
    add_report_files(sweep, markdown=False)
