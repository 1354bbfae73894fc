"""``pyinfer ops``: the arithmetic of one inference and where its time goes, per operator."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import EXIT_OK, check_outputs, write_output, write_plot
from pyinfer.cli.model_args import input_shapes, load_from_args
from pyinfer.cli.parser import add_command, add_model_options, positive_int

if TYPE_CHECKING:
    from pyinfer.analysis.arithmetic import Arithmetic
    from pyinfer.analysis.energy import EnergyReading
    from pyinfer.analysis.operators import OperatorBreakdown
    from pyinfer.analysis.peaks import MachinePeaks
    from pyinfer.backends.base import Model
    from pyinfer.report import ProfileReport

__all__ = ["add_parser", "cmd_ops", "operator_section", "roofline_points", "with_arithmetic"]
logger = logging.getLogger(__name__)


def operator_section(
    model: Model,
    batch_size: int,
    runs: int = 20,
    *,
    recalibrate: bool = False,
    plot: str | None = None,
    dims: Mapping[str, int] | None = None,
) -> OperatorBreakdown:
    """Counts the model's MACs, times its operators, and prints both (``ops`` and ``profile``).

    Args:
        model: The loaded model.
        batch_size: The batch of each call.
        runs: Calls in the latency pass and in the operator pass.
        recalibrate: Measure the machine's peaks again rather than read them from the cache.
        plot: A PNG to draw the roofline in.
        dims: Sizes of named dynamic dimensions other than the batch (over the model's own
            :attr:`~pyinfer.backends.base.Model.default_dims`).

    Returns:
        The breakdown printed.
    """
    from pyinfer.analysis import count_macs
    from pyinfer.analysis.operators import measure_operators
    from pyinfer.analysis.peaks import fraction_of_peak, machine_peaks, roofline

    sizes = {**model.default_dims, **(dims or {})}
    arithmetic = count_macs(model, batch_size, dims=sizes)
    breakdown = measure_operators(model, batch_size, runs=runs, dims=sizes, arithmetic=arithmetic)
    median = breakdown.median_ms or breakdown.latency_ms
    rate = 2 * arithmetic.macs / (median * 1e-3) / 1e9
    calibrated = machine_peaks(recalibrate=recalibrate)
    fraction, peaks = fraction_of_peak(rate, calibrated)
    # Only what this run changed: earlier runs' notes stay in the cache as its history.
    new_notes = peaks.notes[len(calibrated.notes) :]
    roof = roofline(arithmetic.arithmetic_intensity, peaks)
    libraries = ", ".join(f"{k} {v:.1f}" for k, v in peaks.gemm_gflops.items())
    sys.stdout.write(
        f"Arithmetic: {arithmetic.summary_line()}\n"
        f"Achieved: {rate:.1f} GFLOP/s at the median latency, {fraction:.1%} of the measured "
        f"fp32 peak {peaks.fp32_gflops:.1f} GFLOP/s (GEMM GFLOP/s: {libraries}); memory "
        f"{peaks.bandwidth_gbs:.1f} GB/s; {roof.bound} at {roof.intensity:.1f} FLOP/byte "
        f"(ridge {peaks.ridge_intensity:.1f}), roof {roof.attainable_gflops:.1f} GFLOP/s\n"
        + "".join(f"Note: {n}\n" for n in new_notes)
        + f"{breakdown.table()}\n{_energy(model, batch_size, runs, sizes).line()}\n"
    )
    if plot:
        _plot(breakdown, arithmetic, peaks, rate, Path(plot))
    return breakdown


def with_arithmetic(report: ProfileReport, model: Model) -> ProfileReport:
    """``pyinfer profile``'s Arithmetic line (:func:`pyinfer.analysis.with_arithmetic`)."""
    from pyinfer.analysis import with_arithmetic as add_arithmetic

    return add_arithmetic(report, model)


def _energy(model: Model, batch_size: int, runs: int, dims: Mapping[str, int]) -> EnergyReading:
    """Joules per inference over ``runs`` more calls (RAPL, or NVML on a CUDA model)."""
    from pyinfer.analysis.energy import measure_energy
    from pyinfer.profiling.gpu import nvml_index

    native = model.to_native(model.example_inputs(batch_size, dims=dims))

    def call() -> None:
        model.run_native(native)
        model.synchronize()

    gpu = nvml_index(model.device.index) if model.device.is_cuda else None
    return measure_energy(call, runs, batch_size, gpu_index=gpu)


def _plot(
    breakdown: OperatorBreakdown, arithmetic: Arithmetic, peaks: MachinePeaks, rate: float,
    path: Path,
) -> None:  # fmt: skip
    """The roofline: the model, then each of the top classes with MACs.

    A class sits at its FLOPs over the bytes its operators read and write, weights included
    (:meth:`~pyinfer.analysis.arithmetic.Arithmetic.intensity_by_class`).
    """
    from pyinfer.analysis.roofline_plot import plot_roofline

    points = roofline_points(breakdown, arithmetic, rate)
    write_plot(
        lambda file: plot_roofline(peaks, points, file, title=f"{breakdown.model} roofline"),
        path,
        "roofline plot",
    )


def roofline_points(
    breakdown: OperatorBreakdown, arithmetic: Arithmetic, rate: float, top: int = 5
) -> list[tuple[str, float, float]]:
    """``(label, FLOP per byte, achieved GFLOP/s)``: the model, then its top classes with MACs.

    Args:
        breakdown: The timed operators (slowest first).
        arithmetic: The counted operators, with their weight and activation bytes.
        rate: The model's achieved GFLOP/s.
        top: How many of the slowest classes to consider.
    """
    points = [(breakdown.model, arithmetic.arithmetic_intensity, rate)]
    intensity = arithmetic.intensity_by_class()
    for op in breakdown.operators[:top]:
        if op.macs and op.gflops_per_s and op.op_class in intensity:
            points.append((op.op_class, intensity[op.op_class], op.gflops_per_s))
    return points


def _as_json(breakdown: OperatorBreakdown) -> dict[str, Any]:
    data = dataclasses.asdict(breakdown)
    arithmetic = data.pop("arithmetic")
    if arithmetic is not None:
        arithmetic.pop("operators", None)
        arithmetic["flops"] = 2 * arithmetic["macs"]
        assert breakdown.arithmetic is not None
        arithmetic["intensity_by_class"] = breakdown.arithmetic.intensity_by_class()
    data["arithmetic"] = arithmetic
    data["operator_ms"] = breakdown.operator_ms
    data["overhead_ms"] = breakdown.overhead_ms
    return data


def cmd_ops(args: argparse.Namespace) -> int:
    """Loads a model, counts its arithmetic and prints the operator breakdown."""
    check_outputs(args.json, plot=args.plot)
    model = load_from_args(args)
    dims, batch = input_shapes(args.input_shape, model, args.batch_size, takes_inputs=False)
    breakdown = operator_section(
        model,
        batch or args.batch_size or 1,
        args.runs,
        recalibrate=args.recalibrate,
        plot=args.plot,
        dims=dims,
    )
    if args.json:
        write_output(args.json, json.dumps(_as_json(breakdown), indent=2) + "\n", "operators")
    return EXIT_OK


_EXAMPLES = (
    "pyinfer ops resnet50.onnx",
    "pyinfer ops model.pt --batch-size 8 --json ops.json",
    "pyinfer ops scripted.pt --input-shape 1x3x224x224",
    "pyinfer ops bert/ --input-shape sequence=64",
)


def add_parser(commands: Any) -> None:
    """Adds ``ops`` to the ``pyinfer`` subcommands."""
    ops = add_command(
        commands,
        "ops",
        "count a model's MACs and time its operators",
        "Counts the multiply-accumulates of one call (FLOPs = 2 x MACs) per operator class, "
        "times the call end to end, then times each operator with the framework's own profiler "
        "in a pass apart, and prints the operators by time beside the latency, the difference "
        "being the framework's overhead.",
        _EXAMPLES,
        handler=cmd_ops,
    )
    ops.add_argument("model", help="the model file (or SavedModel folder)")
    add_model_options(ops)
    ops.add_argument("--batch-size", type=positive_int, help="batch of each call (default 1)")
    ops.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="as for profile: a named dimension (sequence=128), an input's whole shape "
        "(input_ids=1x128) or a single-input model's shape (1x3x224x224); repeatable",
    )
    ops.add_argument("--runs", type=positive_int, default=20, help="calls timed in each pass")
    ops.add_argument("--json", metavar="FILE", help="write the breakdown as JSON")
    ops.add_argument("--plot", metavar="FILE.png", help="draw the roofline with the model")
    ops.add_argument(
        "--recalibrate",
        action="store_true",
        help="measure the machine's GEMM peak and memory bandwidth again (else cached)",
    )
