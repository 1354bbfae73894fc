"""Atomic files: a reader sees the old content or the new, never a part.

:func:`write_atomic` writes to a hidden temporary file in the same folder and renames it over
the target; temporary files that a killed process left behind are removed by the next write.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _umask() -> int:
    """The process's umask, read without changing it (Linux ``/proc``), else the usual 022."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    return 0o022  # pragma: no cover - not Linux


STALE_TEMP_S = 600.0
"""Age in seconds after which :func:`write_atomic` removes a temporary file of its own target
that a killed process left behind (a live write of a report takes well under a second)."""


def _temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names of :func:`write_atomic`'s temporary files for a target called ``name``."""
    # mkstemp's random part: 8 characters of [a-z0-9_].
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def _remove_stale_temps(target: Path) -> None:
    """Removes temporary files of ``target`` older than :data:`STALE_TEMP_S`.

    Only a process killed while writing (SIGKILL, a power cut) leaves one; a younger one may be
    another process's write in progress and is left alone.
    """
    pattern = _temp_name_pattern(target.name)
    now = time.time()
    try:
        candidates = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    for stale in candidates:
        try:
            if now - stale.stat().st_mtime > STALE_TEMP_S:
                stale.unlink()
                logger.info("removed %s, left by a write that was killed", stale)
        except OSError:  # gone already, or not ours to remove
            continue


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Writes a file so that readers see the old content or the new, never a part.

    The data goes to a temporary file in the same folder (``.NAME.XXXXXXXX.tmp``: hidden, and
    no ``*.json`` pattern matches it), is flushed to disk, then renamed over ``path``
    (``os.replace``, atomic on POSIX). On failure or an interrupt the temporary file is
    removed; only a process killed outright (SIGKILL) leaves it, and the next write of the same
    ``path`` removes such files once they are older than :data:`STALE_TEMP_S`.

    Args:
        path: The file to write; its folder must exist.
        data: Text (written as UTF-8) or bytes.

    Returns:
        The path written.

    Raises:
        OSError: If the folder does not exist or cannot be written.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # owns fd from here: closed whatever fails below
            # mkstemp creates the file private (0600); give it the mode a plain open() would.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temps(target)
    return target
