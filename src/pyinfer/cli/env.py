"""``pyinfer env``: the environment pyinfer records with every result."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from pyinfer.cli.common import EXIT_OK, value_text
from pyinfer.cli.parser import add_command

__all__ = ["add_parser", "cmd_env"]


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if not value:
            return [(prefix, "(none)")]
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(f"{prefix}.{k}", v)
        return rows
    return [(prefix, value_text(value))]


def cmd_env(args: argparse.Namespace) -> int:
    """The environment pyinfer records with every result, as text or JSON."""
    from pyinfer.report.environment import collect_environment

    env = dataclasses.asdict(collect_environment())
    if args.json:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
        return EXIT_OK
    rows: list[tuple[str, str]] = []
    for key, value in env.items():
        rows += _flatten(key, value)
    width = max(len(k) for k, _ in rows)
    sys.stdout.write("\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Adds ``env`` to the ``pyinfer`` subcommands."""
    env = add_command(
        commands,
        "env",
        "print the environment pyinfer records",
        "Prints the environment pyinfer records with every result: CPU, cores and affinity, "
        "thread settings, GPU, Python, platform, package versions and the timing clock.",
        ["pyinfer env", "pyinfer env --json > env.json"],
        handler=cmd_env,
    )
    env.add_argument("--json", action="store_true", help="print it as JSON")
