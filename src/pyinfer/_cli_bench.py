"""The ``pyinfer bench`` and ``pyinfer formats`` commands (the specification's benchmark suite)."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any) -> None:
    """Adds ``bench`` and ``formats`` to the ``pyinfer`` subcommands.

    Args:
        commands: The ``argparse`` subparsers action of the ``pyinfer`` parser.
    """
    del commands  # filled in by the benchmark-suite work
