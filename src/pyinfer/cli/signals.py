"""Ctrl-C and SIGTERM while a command runs: both stop it the same way, and are recorded.

The command line keeps what was measured when it is stopped, prints it and writes it; these
helpers turn both signals into ``KeyboardInterrupt`` for the duration of a command and say which
came, so the exit status can tell them apart (130 or 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from pyinfer.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED

__all__ = ["StopSignals", "stop_signals"]


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
