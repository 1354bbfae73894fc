"""Load-test targets importable by a worker process (``instances="processes"``)."""

from __future__ import annotations

import ctypes
import time

# Functions of a PyDLL keep the GIL while they run (those of a CDLL release it).
_LIBC_KEEPING_THE_GIL = ctypes.PyDLL(None)


def busy_2ms() -> None:
    """2 ms of pure-Python work: it holds the GIL all along, as Python pre-processing does."""
    end = time.perf_counter() + 0.002
    while time.perf_counter() < end:
        pass


def gil_held_wait_2ms() -> None:
    """Waits 2 ms in C holding the GIL, using no CPU.

    A GIL-bound call (as a C extension that never releases the GIL) whose cost does not depend
    on how busy the machine's CPUs are, unlike :func:`busy_2ms`'s.
    """
    _LIBC_KEEPING_THE_GIL.usleep(2000)


def refuses_every_request() -> None:
    """A target whose every call fails, as a serving bug does."""
    raise ValueError("this target refuses every request")
