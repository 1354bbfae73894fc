"""Named baselines: profile reports kept in a folder, to compare later runs against.

A baseline is one profile report saved as ``NAME.json`` in a folder (``.pyinfer/baselines/``
under the current directory by default), so a CI job can profile, then compare the new report
with the one kept from the main branch: ``pyinfer compare new.json --baseline main
--fail-if-slower 5%``. Files are written atomically; names are plain file names, checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.files import write_atomic
from pyinfer.report.records import ProfileReport

__all__ = [
    "DEFAULT_BASELINE_DIR",
    "baseline_names",
    "baseline_path",
    "load_baseline",
    "save_baseline",
]

#: Where baselines are kept when no folder is given, relative to the current directory.
DEFAULT_BASELINE_DIR = Path(".pyinfer") / "baselines"

#: A baseline name: a letter or digit, then letters, digits, ``.``, ``_`` or ``-`` (no path
#: separator, no leading dot), at most 100 characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidArgumentError(
            f"baseline name {name!r}: use letters, digits, '.', '_' and '-' (up to 100, "
            "starting with a letter or digit, no '/' and no '..'), such as 'main' or 'v1.2'"
        )
    return name


def baseline_path(name: str, folder: str | Path = DEFAULT_BASELINE_DIR) -> Path:
    """The file that holds baseline ``name`` in ``folder`` (it may not exist yet).

    Raises:
        InvalidArgumentError: If the name is not a plain name (see the module's rule).
    """
    return Path(folder) / f"{_check_name(name)}.json"


def baseline_names(folder: str | Path = DEFAULT_BASELINE_DIR) -> tuple[str, ...]:
    """The baselines saved in ``folder``, sorted (none when it does not exist)."""
    root = Path(folder)
    if not root.is_dir():
        return ()
    names = (p.stem for p in root.glob("*.json") if p.is_file())
    return tuple(sorted(n for n in names if _NAME.fullmatch(n) and ".." not in n))


def save_baseline(
    report: ProfileReport, name: str, folder: str | Path = DEFAULT_BASELINE_DIR
) -> Path:
    """Keeps ``report`` as baseline ``name``, replacing one of that name.

    The folder is created when missing; the file is written atomically, so a reader sees the
    old baseline or the new one, never a part.

    Args:
        report: The profile report to keep.
        name: The baseline's name (``main``, ``v1.2``...).
        folder: Where baselines are kept.

    Returns:
        The file written.

    Raises:
        InvalidArgumentError: If the name is not a plain name, or the folder cannot be made or
            written (the message names it).
    """
    path = baseline_path(name, folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, report.to_json())
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot save baseline {name!r} to {path}: {exc.strerror or exc}"
        ) from exc


def load_baseline(name: str, folder: str | Path = DEFAULT_BASELINE_DIR) -> ProfileReport:
    """The report kept as baseline ``name``.

    Raises:
        InvalidArgumentError: If the name is not a plain name, there is no such baseline (the
            message lists those that exist), or its file is not a readable profile report.
    """
    path = baseline_path(name, folder)
    if not path.is_file():
        names = baseline_names(folder)
        known = (
            f"the baselines there: {', '.join(names)}"
            if names
            else f"none is saved there yet ('pyinfer compare REPORT --save-baseline {name}' "
            "saves one)"
        )
        raise InvalidArgumentError(f"no baseline {name!r} in {Path(folder)}: {known}")
    return ProfileReport.load(path)
