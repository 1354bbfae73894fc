"""``pyinfer compare``: the comparison table of saved profile reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import EXIT_OK, CommandError, check_outputs, write_output
from pyinfer.cli.parser import add_command
from pyinfer.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.report import ProfileReport

__all__ = ["add_parser", "cmd_compare"]


def _load_report(path: str) -> ProfileReport:
    from pyinfer.report import ProfileReport

    if not Path(path).exists():
        raise CommandError(f"report {path} does not exist")
    try:
        return ProfileReport.load(path)
    except InvalidArgumentError as exc:
        if _is_sweep_report(path):
            raise CommandError(
                f"{path} is a sweep report (pyinfer sweep --json); compare takes profile "
                "reports (pyinfer profile --json)"
            ) from exc
        raise CommandError(f"not a readable profile report: {exc}") from exc


def _is_sweep_report(path: str) -> bool:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "batch_curve" in data and "latency" not in data


def cmd_compare(args: argparse.Namespace) -> int:
    """The comparison table of saved reports and each one's change against the first."""
    from pyinfer.report import compare, comparison_table

    check_outputs(args.markdown)
    reports = [_load_report(p) for p in args.reports]
    table = comparison_table(reports)
    blocks = []
    for path, report in zip(args.reports[1:], reports[1:], strict=True):
        blocks.append((f"{args.reports[0]} -> {path}", compare(reports[0], report).to_text()))
    text = table + "".join(f"\n\n{title}\n{body}" for title, body in blocks)
    sys.stdout.write(text + "\n")
    if args.markdown:
        md = ["## Comparison", "", "```", table, "```"]
        for title, body in blocks:
            md += ["", f"### {title}", "", "```", body, "```"]
        write_output(args.markdown, "\n".join(md) + "\n", "Markdown comparison")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Adds ``compare`` to the ``pyinfer`` subcommands."""
    compare = add_command(
        commands,
        "compare",
        "compare saved profile reports",
        "Loads reports saved by 'pyinfer profile --json' and prints the comparison table, then "
        "each later report against the first: the change of each metric and the Mann-Whitney "
        "U test on the raw latency samples (faster/slower only when significant and at least "
        "2% at the median).",
        ["pyinfer compare torch.json onnx.json", "pyinfer compare a.json b.json --markdown c.md"],
        handler=cmd_compare,
    )
    compare.add_argument("reports", nargs="+", metavar="REPORT", help="JSON reports, 1 or more")
    compare.add_argument("--markdown", metavar="FILE", help="also write it as Markdown")
