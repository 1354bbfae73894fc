"""The ``pyinfer`` command: its argument tree and its entry point.

:func:`main` parses the command line, runs the subcommand's ``cmd_<name>()`` under
:func:`~pyinfer.cli.signals.stop_signals`, and turns what happened into one line on stderr and
an exit status (:mod:`pyinfer.cli.common`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

import pyinfer
from pyinfer.cli import bench, compare, demo, env, inspect, load, ops, profile, run
from pyinfer.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, first_and_last_line
from pyinfer.cli.parser import Parser
from pyinfer.cli.signals import StopSignals, stop_signals
from pyinfer.errors import InvalidArgumentError, PyinferError

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyinfer`` command."""
    parser = Parser(
        prog="pyinfer",
        description="Load, run and profile machine-learning models.",
        epilog="Example: pyinfer profile model.onnx --batch-size 8\n"
        "Exit status: 0 done, 1 failed, 2 bad usage, 3 not stable (with --strict), 4 slower "
        "(compare --fail-if-slower), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); "
        "interrupted or terminated, what was measured is written.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pyinfer {pyinfer.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for command in (inspect, run, profile, compare, env, demo, bench, load, ops):
        command.add_parser(commands)
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
    signals = StopSignals()
    try:
        with stop_signals() as signals:
            status = _run_command(args, signals)
    except KeyboardInterrupt:  # a signal in the instant between the command's end and here
        status = EXIT_INTERRUPTED
    if status == EXIT_INTERRUPTED and signals.terminated:
        sys.stderr.write(f"pyinfer {args.command}: stopped by SIGTERM (exit status 143)\n")
    return signals.exit_status(status)


def _run_command(args: argparse.Namespace, signals: StopSignals) -> int:
    """Runs the command's handler; maps errors and interrupts to a message and a status."""
    try:
        status: int = args.handler(args)
    except PyinferError as error:
        if args.verbose:
            logger.exception("pyinfer %s failed", args.command)
        sys.stderr.write(f"pyinfer {args.command}: error: {first_and_last_line(str(error))}\n")
        return EXIT_USAGE if isinstance(error, InvalidArgumentError) else EXIT_FAILED
    except KeyboardInterrupt:
        if signals.repeated:
            sys.stderr.write(
                f"pyinfer {args.command}: interrupted again: stopped without writing the rest; "
                "the files reported as written are complete, the others were not written\n"
            )
        else:
            sys.stderr.write(f"pyinfer {args.command}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.verbose:
            logger.exception("pyinfer %s: internal error", args.command)
        message = " ".join(str(error).split()) or "(no message)"
        sys.stderr.write(
            f"pyinfer {args.command}: internal error: {type(error).__name__}: {message}"
            + ("\n" if args.verbose else " (re-run with --verbose for the traceback)\n")
        )
        return EXIT_FAILED
    return status
