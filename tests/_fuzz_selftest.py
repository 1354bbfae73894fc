"""Campaigns that misbehave on purpose, to prove the fuzzer sees crashes, hangs and leaks."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _fuzz import register
from pyinfer.errors import CorruptModelError

_HOARD: list[bytes] = []
_FILES: list[Any] = []


@register("selftest")
class Misbehaving:
    """Input ``i`` does what ``config["plan"][str(i)]`` says; every other input is fine.

    Plans: ``"typed"`` raises a pyinfer error (allowed), ``"untyped"`` a bare ``ValueError``,
    ``"segfault"`` crashes the process, ``"hang"`` sleeps forever, ``"leak"`` keeps 1 MiB and
    ``"fd"`` keeps a file open, on every input from then on; ``"noisy"`` writes 16 KiB to
    the process's stderr (as native decoders do), which must not block it.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.plan: dict[str, str] = dict(config.get("plan", {}))
        self.always = config.get("always")

    def case(self, index: int) -> int:
        return index

    def run(self, case: int) -> str:
        what = self.plan.get(str(case), self.always)
        if what == "typed":
            raise CorruptModelError(f"input {case} is damaged")
        if what == "untyped":
            raise ValueError(f"input {case} slipped through")
        if what == "segfault":
            ctypes.string_at(0)
        if what == "hang":
            time.sleep(3600)
        if what == "leak":
            _HOARD.append(os.urandom(1 << 20))
        if what == "noisy":
            os.write(2, b"x" * (16 << 10))
        if what == "fd":
            _FILES.append(Path(os.devnull).open("rb"))  # noqa: SIM115 - the leak is the point
        return "ok"

    def save(self, case: int, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "case.txt"
        target.write_text(str(case))
        return target
