"""Running a Python snippet in a child process that imports the pyinfer under test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pyinfer


def run_python(
    script: str, cwd: Path, *, unset: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` (dedented) with this interpreter; the child imports this pyinfer.

    Args:
        script: The code.
        cwd: The child's working folder.
        unset: Environment variables the child must not inherit.
    """
    # The pyinfer under test, installed or built in place, is the one the child imports.
    package_root = str(Path(pyinfer.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    drop = set(unset)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**env, "PYTHONPATH": path},
    )
