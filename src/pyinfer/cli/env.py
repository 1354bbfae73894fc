"""``pyinfer env``: the environment pyinfer records with every result.

``pyinfer env --check`` lists what makes timings noisy on this machine and how to fix each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from pyinfer.cli.common import EXIT_OK, value_text
from pyinfer.cli.parser import add_command

__all__ = ["CHECK_SAMPLE_S", "add_parser", "cmd_env"]

#: How long ``env --check`` watches the machine's load (long enough for the kernel's CPU-time
#: ticks to read within a few hundredths of a CPU, short enough not to be a wait).
CHECK_SAMPLE_S = 0.5


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if not value:
            return [(prefix, "(none)")]
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(f"{prefix}.{k}", v)
        return rows
    return [(prefix, "unknown" if value is None else value_text(value))]


def _check(as_json: bool) -> int:
    """``env --check``: one block per finding, what is fine too, then a summary line."""
    from pyinfer.backends.frameworks import physical_cores
    from pyinfer.profiling.noise import sample_machine
    from pyinfer.report.system import load_findings, read_system_tuning, tuning_findings

    tuning = read_system_tuning()
    reading, busiest = sample_machine(CHECK_SAMPLE_S)
    findings = tuning_findings(tuning, physical_cores=physical_cores())
    findings += load_findings(tuning, reading, [(p.pid, p.name, p.cpus) for p in busiest])
    if as_json:
        document = {
            "findings": [dataclasses.asdict(f) for f in findings],
            "system": tuning.to_dict(),
            "load": dataclasses.asdict(reading),
            "busiest": [dataclasses.asdict(p) for p in busiest],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return EXIT_OK
    noisy = sum(f.status == "noisy" for f in findings)
    unknown = sum(f.status == "unknown" for f in findings)
    summary = (
        f"{noisy} of these {len(findings)} findings make timings noisy here (marked NOISY)"
        if noisy
        else f"nothing of these {len(findings)} makes timings noisy here"
    )
    if unknown:
        summary += f"; {unknown} could not be read"
    summary += (
        ". pyinfer profile warns when a run overlaps other load; --cpus LIST pins its worker "
        "processes to CPUs."
    )
    blocks = ["\n".join(f.lines()) for f in findings]
    sys.stdout.write("\n\n".join([*blocks, summary]) + "\n")
    return EXIT_OK


def cmd_env(args: argparse.Namespace) -> int:
    """The environment pyinfer records with every result, as text or JSON.

    With ``--check``: what makes timings noisy here and how to fix each (exit status 0 even
    with findings: it informs).
    """
    if args.check:
        return _check(args.json)
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
        "thread settings, GPU, Python, platform, package versions, the timing clock and the "
        "machine's timing settings (frequency governor, turbo, SMT, isolated CPUs). With "
        "--check, lists what makes timings noisy on this machine and how to fix each: the "
        "governor, turbo, SMT, isolated CPUs, thread settings, other processes busy now and "
        "CPU steal; exit status 0 even with findings.",
        ["pyinfer env", "pyinfer env --json > env.json", "pyinfer env --check"],
        handler=cmd_env,
    )
    env.add_argument("--json", action="store_true", help="print it as JSON")
    env.add_argument(
        "--check",
        action="store_true",
        help="list what makes timings noisy here and how to fix each (samples the load 0.5 s)",
    )
