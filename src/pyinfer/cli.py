"""The ``pyinfer`` command line.

One ``cmd_<name>()`` function per subcommand. Errors from pyinfer become a one-line message on
stderr and exit status 2 (bad usage) or 1 (a failed run); ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

import pyinfer
from pyinfer._cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNSTABLE,
    EXIT_USAGE,
    non_negative_int,
    positive_int,
)
from pyinfer.errors import PyinferError

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNSTABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def cmd_demo(args: argparse.Namespace) -> int:
    """Runs the core demo and prints its report (or JSON with ``--json``)."""
    from pyinfer._demo import format_demo, run_demo

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyinfer`` command."""
    parser = argparse.ArgumentParser(
        prog="pyinfer",
        description="Load, run and profile machine-learning models.",
        epilog="Example: pyinfer demo --iterations 2000",
    )
    parser.add_argument("--version", action="version", version=f"pyinfer {pyinfer.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="time a numpy MLP with the native core and print the report",
        description="Times the forward pass of a random numpy MLP with pyinfer's native timed "
        "loop and prints latency statistics, memory and throughput in pyinfer's report layout.",
        epilog="Example: pyinfer demo --iterations 2000 --batch-size 64",
    )
    demo.add_argument("--iterations", type=positive_int, default=1000, help="timed passes")
    demo.add_argument("--warmup", type=non_negative_int, default=100, help="untimed passes first")
    demo.add_argument("--batch-size", type=positive_int, default=32, help="rows per pass")
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(handler=cmd_demo)

    from pyinfer import _cli_bench

    _cli_bench.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyinfer`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        status: int = args.handler(args)
    except PyinferError as error:
        if args.verbose:
            logger.exception("pyinfer %s failed", args.command)
        sys.stderr.write(f"pyinfer {args.command}: error: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"pyinfer {args.command}: interrupted\n")
        return EXIT_INTERRUPTED
    return status
