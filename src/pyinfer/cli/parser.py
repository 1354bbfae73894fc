"""The argparse pieces every command shares: option types, shared option groups, one-line errors.

Each command module adds its own subcommand with :func:`add_command` and the shared groups
(:func:`add_model_options`, :func:`add_timing_options`, :func:`add_report_files`); the option
types turn a malformed value into a one-line usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

from pyinfer.cli.common import EXIT_USAGE
from pyinfer.formats import FORMATS

__all__ = [
    "DEFAULT_REPEAT",
    "MODEL_FORMATS",
    "Parser",
    "add_command",
    "add_loader_options",
    "add_model_options",
    "add_repeat_options",
    "add_report_files",
    "add_timing_options",
    "cpu_list",
    "int_list",
    "loader_option",
    "non_negative_int",
    "percent_or_fraction",
    "positive_float",
    "positive_int",
]

#: The ``--format`` names, from the format registry (which imports no framework).
MODEL_FORMATS = tuple(f.name for f in FORMATS)


#: What argparse's "invalid TYPE value" means, for the option types of this module.
_TYPE_WORDS = {
    "positive_int": "an integer of at least 1",
    "non_negative_int": "an integer of 0 or more",
    "int": "an integer",
    "float": "a number",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong and where to read more.

    argparse prints the whole usage before a mistake, a dozen lines for ``profile``; the
    message alone, with a pointer to ``--help``, reads better (exit status 2 all the same).
    """

    def error(self, message: str) -> typing.NoReturn:
        """Exits with status 2 and the mistake on one line, pointing to ``--help``."""
        match = re.fullmatch(r"argument (.+?): invalid (\w+) value: (.+)", message)
        if match and match.group(2) in _TYPE_WORDS:
            option, kind, value = match.groups()
            message = f"argument {option}: must be {_TYPE_WORDS[kind]}, got {value}"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An integer of at least 1 (an argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of 0 or more (an argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def percent_or_fraction(text: str) -> float:
    """A target such as ``1%`` or ``0.01``, returned as a fraction in (0, 1)."""
    raw = text.strip()
    scale = 100.0 if raw.endswith("%") else 1.0
    try:
        value = float(raw.removesuffix("%")) / scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a fraction or a percentage, got {text!r}"
        ) from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100%, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """A comma-separated list of integers of at least 1, such as ``1,2,4,8`` (an argparse type)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of integers, got {text!r}"
        )
    values: list[int] = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of integers, got {part!r} in {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"each value must be at least 1, got {value}")
        values.append(value)
    return values


def loader_option(text: str) -> tuple[str, Any]:
    """A loader option ``KEY=VALUE`` (an argparse type): VALUE as JSON when it parses."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def add_loader_options(parser: Any, *, scope: str = "") -> None:
    """Adds ``--option KEY=VALUE`` (repeatable, into ``options``) and ``--trust-code``.

    Args:
        parser: An ``argparse`` parser or argument group.
        scope: A prefix for the help texts, such as ``"MODEL: "`` on a command where only
            some uses load a model.
    """
    parser.add_argument(
        "--option",
        dest="options",
        metavar="KEY=VALUE",
        action="append",
        type=loader_option,
        default=[],
        help=f"{scope}a loader option (repeatable); VALUE is JSON when it parses, else a "
        "string: --option num_threads=2, --option architecture=torchvision.models:resnet18, "
        "--option 'input_shapes={\"x\": [null, 3, 224, 224]}'",
    )
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help=f"{scope}allow loading a model whose file holds code (a whole pickled torch "
        "module or other pickled objects, pickles in a torch.export archive, Keras Lambda "
        "layers, SavedModel ops that write files); that code runs with your rights, so only "
        "for files you trust",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--format`` and ``--option``, shared by info/run/profile/sweep."""
    group = parser.add_argument_group("model loading")
    group.add_argument(
        "--device", default="cpu", help="cpu (default), cuda or cuda:N; the model runs there"
    )
    group.add_argument(
        "--format",
        metavar="FORMAT",
        help="skip detection and load as this format: " + ", ".join(MODEL_FORMATS),
    )
    add_loader_options(group)


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The profiler's warm-up, stopping-rule and input options (profile and sweep)."""
    group = parser.add_argument_group("measurement")
    group.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="for dynamic models: a named dimension (sequence=128), an input's whole shape "
        "(input_ids=1x128), or the shape of a single-input model (1x3x224x224); a model that "
        "declares no input shape (TorchScript) is loaded with the whole shapes given, the "
        "batch left dynamic; repeatable",
    )
    group.add_argument(
        "--warmup",
        type=non_negative_int,
        help="untimed calls first, then more until the median settles (default 10; 5 a run "
        "with --repeat)",
    )
    count = group.add_mutually_exclusive_group()
    count.add_argument(
        "--iterations", type=positive_int, help="exactly N timed calls (no time limits)"
    )
    count.add_argument(
        "--min-time", type=positive_float, help="measure at least S seconds (default 1)"
    )
    group.add_argument(
        "--max-time", type=positive_float, help="stop after S seconds, stable or not (default 30)"
    )
    group.add_argument(
        "--stability",
        type=percent_or_fraction,
        help="stability target, as 1%% or 0.01 (default 1%%; 5%% suits --stability-metric cv)",
    )
    group.add_argument(
        "--stability-metric",
        choices=("median_ci", "cv"),
        default="median_ci",
        help="median_ci: half-width of the median's 95%% confidence interval (default); "
        "cv: std/mean",
    )
    group.add_argument(
        "--throughput-time",
        type=positive_float,
        default=2.0,
        help="seconds of the throughput run (default 2)",
    )
    add_repeat_options(group)


#: ``--repeat``'s default: latency runs in fresh processes, enough for a between-run interval
#: and a comparison with a 95% interval (4 or more runs a side), in about one run's time.
DEFAULT_REPEAT = 5


def add_repeat_options(
    group: Any, *, default: int | None = DEFAULT_REPEAT, repeat_help: str | None = None
) -> None:
    """``--repeat``, ``--cpus`` and ``--strict``, shared by profile, sweep, formats and bench.

    Args:
        group: The parser or argument group to add the options to.
        default: ``--repeat``'s default; ``None`` lets the command pick its own count.
        repeat_help: ``--repeat``'s help text, where the command's runs differ from a
            profile's.
    """
    group.add_argument(
        "--repeat",
        type=positive_int,
        default=default,
        metavar="N",
        help=repeat_help
        or f"measure in N fresh processes, each loading the model anew (default "
        f"{DEFAULT_REPEAT}); the report gives each run's median, the spread between runs and "
        "how reproducible the result is; the default time and count limits are shared among "
        "the runs. --repeat 1: one run, in this process",
    )
    group.add_argument(
        "--cpus",
        type=cpu_list,
        metavar="LIST",
        help="pin the measuring processes to these logical CPUs, as taskset -c takes them: "
        "0,2 or 2-3",
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 3 when a measurement did not meet its stability or "
        "reproducibility target (default: warn and exit 0)",
    )


def cpu_list(text: str) -> list[int]:
    """Logical CPUs as ``taskset -c`` writes them: ``0,2,4-7`` (an argparse type).

    CPUs this process may not run on are refused, naming them.
    """
    from pyinfer.errors import InvalidArgumentError
    from pyinfer.report.system import parse_cpu_list

    try:
        cpus = list(parse_cpu_list(text))
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not cpus:
        raise argparse.ArgumentTypeError(f"must name at least one CPU, got {text!r}")
    if hasattr(os, "sched_getaffinity"):
        available = os.sched_getaffinity(0)
        missing = [c for c in cpus if c not in available]
        if missing:
            raise argparse.ArgumentTypeError(
                f"CPU(s) {', '.join(map(str, missing))} not available to this process (it may "
                f"run on {', '.join(map(str, sorted(available)))})"
            )
    return cpus


def add_command(
    commands: Any,
    name: str,
    help_text: str,
    description: str,
    examples: Sequence[str],
    *,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """Adds the subcommand ``name``, run by ``handler``, with its own ``--verbose``.

    Args:
        commands: The ``argparse`` subparsers action of the ``pyinfer`` parser.
        name: The subcommand.
        help_text: Its line in ``pyinfer --help``.
        description: Its paragraph in ``pyinfer NAME --help``.
        examples: Command lines shown under the description.
        handler: The ``cmd_<name>`` function; it returns the exit status.

    Returns:
        The subcommand's parser, to add its options to.
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="Examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log progress and show tracebacks",
    )
    parser.set_defaults(handler=handler)
    return parser


def add_report_files(parser: argparse.ArgumentParser, *, markdown: bool = True) -> None:
    """The ``--json``, ``--csv``, ``--markdown`` and ``--plot`` files of profile and sweep."""
    group = parser.add_argument_group("output files (written atomically)")
    group.add_argument("--json", metavar="FILE", help="write the result as JSON")
    group.add_argument("--csv", metavar="FILE", help="write the result as CSV")
    if markdown:
        group.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    group.add_argument(
        "--plot", metavar="FILE", help="write a PNG plot (needs pyinfer-toolkit[plot])"
    )
