"""Pieces shared by the ``pyinfer`` subcommands: exit codes, option types and file output.

Kept apart from ``cli.py`` so the benchmark commands (``_cli_bench.py``) use the same exit codes,
option parsing and atomic writes as the others without importing one another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from pyinfer.errors import InvalidArgumentError

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""The run failed: a model that cannot be loaded, an input that cannot be read, a failed call."""
EXIT_USAGE = 2
"""Bad usage: an unknown option, a malformed value, an option the model cannot take."""
EXIT_UNSTABLE = 3
"""Measured and reported, but at least one measurement did not become stable."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT, the shell convention); what was measured is kept."""
EXIT_TERMINATED = 143
"""Stopped by SIGTERM (128 + SIGTERM: ``kill``, ``timeout``, a cancelled CI job); handled as
Ctrl-C, so what was measured is kept and written too."""


class StopSignals:
    """Which stop signals (SIGINT, SIGTERM) a command received; see :func:`stop_signals`.

    Attributes:
        received: The signal numbers, in the order they came.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    @property
    def terminated(self) -> bool:
        """Whether the first stop signal was SIGTERM."""
        return bool(self.received) and self.received[0] == signal.SIGTERM

    @property
    def repeated(self) -> bool:
        """Whether a second stop signal came (a forced stop while the results were written)."""
        return len(self.received) > 1

    def exit_status(self, status: int) -> int:
        """``status``, with an interrupted one (130) turned to 143 when SIGTERM stopped it."""
        return EXIT_TERMINATED if status == EXIT_INTERRUPTED and self.terminated else status

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """SIGINT and SIGTERM both raise ``KeyboardInterrupt`` for the duration, and are recorded.

    SIGTERM is handled like Ctrl-C, so the results so far are printed and written when ``kill``
    or ``timeout`` stops a command. Every signal raises: a second one, while the results of the
    first are being written, stops the writing at once (each file is written atomically, so it
    is either complete or not there). A signal that was ignored when the command started (SIGINT
    in a background job of a non-interactive shell) stays ignored, as Python itself leaves it;
    the previous handlers are put back afterwards.
    Outside the main thread (where handlers cannot be set) nothing is changed.
    """
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: dict[int, Any] = {}
    try:
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue
            previous[signum] = current
            signal.signal(signum, state._handle)
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


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
    try:
        write_atomic(target, text)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot write the {what} to {target}: {exc.strerror or exc}"
        ) from exc
    sys.stderr.write(f"wrote {what} to {target}\n")
    return target
