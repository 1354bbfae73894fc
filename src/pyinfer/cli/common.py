"""What every ``pyinfer`` command shares: exit statuses, the command error and output files.

The exit statuses are the command line's contract with scripts and CI; the output helpers write
every result file atomically and say on stderr where it went.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfer.errors import InvalidArgumentError, PyinferError

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""The run failed: a model that cannot be loaded, an input that cannot be read, a failed call."""
EXIT_USAGE = 2
"""Bad usage: an unknown option, a malformed value, an option the model cannot take."""
EXIT_UNSTABLE = 3
"""Measured and reported, but at least one measurement did not become stable."""
EXIT_REGRESSION = 4
"""``compare --fail-if-slower``: a later report is slower than the first beyond the threshold,
with 95% confidence."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT, the shell convention); what was measured is kept."""
EXIT_TERMINATED = 143
"""Stopped by SIGTERM (128 + SIGTERM: ``kill``, ``timeout``, a cancelled CI job); handled as
Ctrl-C, so what was measured is kept and written too."""


class CommandError(PyinferError):
    """A command could not do its work: a missing input, a damaged report (exit status 1)."""


def first_and_last_line(message: str) -> str:
    """A message on one line, a traceback in it cut to its first and last lines.

    A traceback a framework put in a message (TorchScript's) is cut to its first and last
    lines, which say what failed and why; a message of one or two lines is joined.
    """
    lines = [" ".join(line.split()) for line in message.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} ... {lines[-1]}"


def value_text(value: Any) -> str:
    """An option's or a setting's value as printed: a string as it is, others as JSON."""
    if isinstance(value, str):
        return value or "(none)"
    return json.dumps(value)


def check_outputs(*paths: str | None, plot: str | None = None) -> None:
    """Refuses, before any work, output files that could not be written.

    A path whose folder does not exist or cannot be written, a path that is a folder, and a
    ``--plot`` file that is not ``.png`` (the plots are PNG images).

    Raises:
        InvalidArgumentError: Naming the path.
    """
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise InvalidArgumentError(f"--plot {plot}: the plot is a PNG image; give a .png file")
    for path in (*paths, plot):
        if path is None:
            continue
        target = Path(path)
        folder = target.parent
        if not folder.is_dir():
            raise InvalidArgumentError(f"cannot write {path}: no folder {folder}")
        if target.is_dir():
            raise InvalidArgumentError(f"cannot write {path}: it is a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InvalidArgumentError(f"cannot write {path}: folder {folder} is not writable")


def _written(write: Callable[[Path], Path], target: Path, what: str) -> Path:
    """Runs ``write(target)``, an OS error becoming a typed one; logs where it went."""
    try:
        written = write(target)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot write the {what} to {target}: {exc.strerror or exc}"
        ) from exc
    sys.stderr.write(f"wrote {what} to {target}\n")
    return written


def write_output(path: str | Path, text: str | bytes, what: str) -> Path:
    """Writes a result file atomically and logs where it went.

    Args:
        path: The file to write; its folder must exist.
        text: The content.
        what: What it is, for the messages ("JSON report").

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: If the folder does not exist or cannot be written; the message
            names the path.
    """
    from pyinfer.report import write_atomic

    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidArgumentError(
            f"cannot write the {what} to {target}: no folder {target.parent}"
        )

    def write(file: Path) -> Path:
        write_atomic(file, text)
        return file

    return _written(write, target, what)


def write_plot(draw: Callable[[Path], Path], path: Path, what: str) -> Path:
    """Draws a plot to ``path`` (``draw(path)``) and logs where it went.

    Raises:
        InvalidArgumentError: If the file cannot be written; the message names the path.
    """
    return _written(draw, path, what)
