"""Keeping the frameworks' native log lines off the console while they import and load a model.

TensorFlow and ONNX Runtime log from C++ straight to file descriptor 2, bypassing Python:
TensorFlow 2.21 prints abseil lines on import (``I0000 00:00:... port.cc:153] oneDNN custom
operations are on...``, ``cuda_platform.cc:52] failed call to cuInit``) whatever
``TF_CPP_MIN_LOG_LEVEL`` says, since they come before abseil's logging is set up; ONNX Runtime
prints ``[W:onnxruntime:, graph.cc:...]`` warnings on session creation. Neither writes to
descriptor 1. :func:`native_output_silenced` points descriptor 2 at a temporary file for its
scope and keeps Python's own standard error (``sys.stderr`` and the logging handlers writing to
it) on the console, so pyinfer's warnings and the errors a command prints still show. What the
frameworks wrote is logged at DEBUG level on the ``pyinfer.loading.quiet`` logger when the scope
ends (saying so when the scope failed), so a verbose run can still read it.

The frameworks' own knobs are left alone: ``TF_CPP_MIN_LOG_LEVEL`` does not silence TensorFlow
2.21's import lines, and ONNX Runtime's ``set_default_logger_severity`` has no getter to restore
it with, and would keep the lines from the DEBUG record a failed load needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["MAX_LOGGED_BYTES", "native_output_silenced"]

logger = logging.getLogger(__name__)

#: The most of the captured native output logged when a scope ends (its last part is kept).
MAX_LOGGED_BYTES = 64 * 1024

_STDERR_FD = 2


@dataclass
class _Redirect:
    """The state of the open silencing: one per process, shared by nested and concurrent scopes."""

    saved_fd: int
    sink: IO[bytes]
    console: IO[str]
    depth: int = 1
    failed: bool = False
    swapped_stderr: Any = None
    swapped_handlers: list[tuple[logging.StreamHandler[Any], Any]] = field(default_factory=list)


_lock = threading.Lock()
_redirect: _Redirect | None = None  # guarded by _lock


@contextlib.contextmanager
def native_output_silenced(enabled: bool = True) -> Iterator[None]:
    """Keeps what native code writes to standard error off the console for the scope.

    File descriptor 2 is pointed at a temporary file and restored when the scope ends, on an
    exception or a ``KeyboardInterrupt`` too. Python's ``sys.stderr`` and the logging handlers
    that write to descriptor 2 are pointed at the console meanwhile, so Python-level warnings
    and errors still show. The captured text is logged at DEBUG level when the scope ends.

    Descriptor 2 belongs to the whole process: while any scope is open, every thread's native
    output is captured. Scopes nest and overlap across threads: only the first one redirects,
    and the last one to end restores.

    Args:
        enabled: ``False`` makes the scope do nothing (a verbose run).

    Yields:
        Nothing; the body runs silenced.
    """
    if not enabled or not _enter():
        yield
        return
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _leave(failed)


def _on_stderr_fd(stream: Any) -> bool:
    try:
        return bool(stream.fileno() == _STDERR_FD)
    except (AttributeError, OSError, ValueError):  # closed, replaced or not a real file
        return False


def _enter() -> bool:
    """Opens (or joins) the redirect; ``False`` where there is no descriptor 2 to redirect."""
    global _redirect  # noqa: PLW0603 - one process-wide redirect, guarded by _lock
    with _lock:
        if _redirect is not None:
            _redirect.depth += 1
            return True
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved_fd = os.dup(_STDERR_FD)
        except OSError:  # no standard error at all
            return False
        sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the redirect ends
        console = open(  # noqa: SIM115 - a second handle on the saved descriptor
            saved_fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
        )
        redirect = _Redirect(saved_fd, sink, console)
        if _on_stderr_fd(sys.stderr):
            redirect.swapped_stderr = sys.stderr
            sys.stderr = console
        for handler in _stream_handlers():
            if _on_stderr_fd(handler.stream):
                redirect.swapped_handlers.append((handler, handler.stream))
                handler.setStream(console)
        try:
            os.dup2(sink.fileno(), _STDERR_FD)
        except BaseException:
            _restore(redirect)
            sink.close()
            raise
        _redirect = redirect
        return True


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Every logging handler that writes to a stream (not a file), once each."""
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.StreamHandler[Any]] = {}
    for each in loggers:
        for handler in getattr(each, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                found[id(handler)] = handler
    return list(found.values())


def _restore(redirect: _Redirect) -> None:
    """Points descriptor 2, ``sys.stderr`` and the handlers back where they were."""
    try:
        with contextlib.suppress(Exception):
            redirect.console.flush()
    finally:
        os.dup2(redirect.saved_fd, _STDERR_FD)
        if redirect.swapped_stderr is not None and sys.stderr is redirect.console:
            sys.stderr = redirect.swapped_stderr
        for handler, stream in redirect.swapped_handlers:
            if handler.stream is redirect.console:
                handler.setStream(stream)
        with contextlib.suppress(Exception):
            redirect.console.close()
        os.close(redirect.saved_fd)


def _leave(failed: bool) -> None:
    """Leaves the redirect; the last scope out restores descriptor 2 and logs the capture."""
    global _redirect  # noqa: PLW0603 - one process-wide redirect, guarded by _lock
    with _lock:
        redirect = _redirect
        if redirect is None:  # pragma: no cover - a leave without an enter
            return
        redirect.failed |= failed
        redirect.depth -= 1
        if redirect.depth > 0:
            return
        _redirect = None
        _restore(redirect)
        with redirect.sink:
            size = redirect.sink.seek(0, os.SEEK_END)
            redirect.sink.seek(max(0, size - MAX_LOGGED_BYTES))
            text = redirect.sink.read().decode("utf-8", "replace").strip()
    if text:
        logger.debug(
            "native output of the frameworks%s (kept off the console):\n%s",
            " before the failure" if redirect.failed else "",
            text,
        )
