"""``pyinfer demo``: time a numpy MLP with the native core and print the report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pyinfer
from pyinfer.cli.common import EXIT_OK
from pyinfer.cli.parser import add_command, non_negative_int, positive_int

__all__ = ["add_parser", "cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    """Runs the core demo and prints its report (or JSON with ``--json``)."""
    from pyinfer.suite.demo import format_demo, run_demo

    result = run_demo(iterations=args.iterations, warmup=args.warmup, batch_size=args.batch_size)
    if args.json:
        latency = result.latency.to_dict()
        latency["percentiles"] = {str(k): v for k, v in result.latency.percentiles.items()}
        payload = {
            "model": result.model,
            "device": result.device,
            "input_shape": list(result.input_shape),
            "iterations": result.iterations,
            "warmup": result.warmup,
            "latency_ns": latency,
            "throughput_fps": result.throughput_fps,
            "parameter_bytes": result.parameter_bytes,
            "peak_rss_delta_bytes": result.peak_rss_delta_bytes,
            "peak_rss_method": result.peak_rss_method,
            "clock": result.clock.to_dict(),
            "timer_overhead_ns": result.timer_overhead_ns,
            "python_loop_overhead_ns": result.python_loop_overhead_ns,
            "pyinfer_version": pyinfer.__version__,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(format_demo(result) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Adds ``demo`` to the ``pyinfer`` subcommands."""
    demo = add_command(
        commands,
        "demo",
        "time a numpy MLP with the native core and print the report",
        "Times the forward pass of a random numpy MLP with pyinfer's native timed "
        "loop and prints latency statistics, memory and throughput in pyinfer's report layout.",
        ["pyinfer demo --iterations 2000 --batch-size 64"],
        handler=cmd_demo,
    )
    demo.add_argument("--iterations", type=positive_int, default=1000, help="timed passes")
    demo.add_argument("--warmup", type=non_negative_int, default=100, help="untimed passes first")
    demo.add_argument("--batch-size", type=positive_int, default=32, help="rows per pass")
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
