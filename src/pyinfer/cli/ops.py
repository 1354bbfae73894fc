"""``pyinfer ops``: the arithmetic of one inference and where its time goes, per operator."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import EXIT_OK, write_output
from pyinfer.cli.model_args import load_from_args
from pyinfer.cli.parser import add_command, add_model_options, positive_int

if TYPE_CHECKING:
    from pyinfer.analysis.operators import OperatorBreakdown
    from pyinfer.backends.base import Model

__all__ = ["add_parser", "cmd_ops", "operator_section"]


def operator_section(model: Model, batch_size: int, runs: int = 20) -> OperatorBreakdown:
    """Counts the model's MACs, times its operators, and prints both (``ops`` and ``profile``).

    Args:
        model: The loaded model.
        batch_size: The batch of each call.
        runs: Calls in the latency pass and in the operator pass.

    Returns:
        The breakdown printed.
    """
    from pyinfer.analysis import count_macs
    from pyinfer.analysis.operators import measure_operators

    arithmetic = count_macs(model, batch_size)
    breakdown = measure_operators(model, batch_size, runs=runs, arithmetic=arithmetic)
    rate = 2 * arithmetic.macs / (breakdown.latency_ms * 1e-3) / 1e9
    sys.stdout.write(
        f"Arithmetic: {arithmetic.summary_line()}\n"
        f"Achieved: {rate:.1f} GFLOP/s end to end\n{breakdown.table()}\n"
    )
    return breakdown


def _as_json(breakdown: OperatorBreakdown) -> dict[str, Any]:
    data = dataclasses.asdict(breakdown)
    arithmetic = data.pop("arithmetic")
    if arithmetic is not None:
        arithmetic.pop("operators", None)
        arithmetic["flops"] = 2 * arithmetic["macs"]
    data["arithmetic"] = arithmetic
    data["operator_ms"] = breakdown.operator_ms
    data["overhead_ms"] = breakdown.overhead_ms
    return data


def cmd_ops(args: argparse.Namespace) -> int:
    """Loads a model, counts its arithmetic and prints the operator breakdown."""
    model = load_from_args(args)
    breakdown = operator_section(model, args.batch_size, args.runs)
    if args.json:
        write_output(args.json, json.dumps(_as_json(breakdown), indent=2) + "\n", "operators")
    return EXIT_OK


_EXAMPLES = ("pyinfer ops resnet50.onnx", "pyinfer ops model.pt --batch-size 8 --json ops.json")


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
    ops.add_argument("--batch-size", type=positive_int, default=1, help="batch of each call")
    ops.add_argument("--runs", type=positive_int, default=20, help="calls timed in each pass")
    ops.add_argument("--json", metavar="FILE", help="write the breakdown as JSON")
