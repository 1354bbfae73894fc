"""Pickle payloads for the untrusted-code tests: unpickled in full, they write a marker file."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any


class Payload:
    """Pickles to ``exec(code)``, which writes ``"ran"`` to ``marker``: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    @property
    def code(self) -> str:
        """The Python source the payload runs."""
        return f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('ran')"

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (self.code,))
