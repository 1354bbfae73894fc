"""What the torch backend's errors say in common: damaged files, a few names of a long list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyinfer.errors import CorruptModelError

_REPORT_SHOWN = 5


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_REPORT_SHOWN])
    return shown + (f", ... and {len(items) - _REPORT_SHOWN} more" if len(items) > 5 else "")


def _corrupt(path: Path, what: str, exc: BaseException) -> CorruptModelError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else type(exc).__name__
    return CorruptModelError(
        f"{path} could not be read as a {what} ({type(exc).__name__}: {detail[:200]}); the "
        "file is damaged or truncated: save, export or copy it again",
        path=path,
    )
