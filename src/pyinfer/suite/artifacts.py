"""The suite's exported model files: kept in a work folder and reused while they still match."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyinfer.report import write_atomic

logger = logging.getLogger(__name__)


class Artifacts:
    """Exported files in a folder, reused when the manifest says they match.

    A file matches when the manifest holds the same key (model, format, size, seed and the
    versions of pyinfer and the frameworks) and its size and modification time are those
    recorded when it was written. The record is written (atomically) only after the file is
    complete, and removed before a file is rewritten, so a file left half-written by a killed
    run is never reused: the next run exports it again.
    """

    MANIFEST = "pyinfer-bench-manifest.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._manifest_path = folder / self.MANIFEST
        self._manifest: dict[str, Any] = {}
        if self._manifest_path.is_file():
            try:
                loaded = json.loads(self._manifest_path.read_text())
                if isinstance(loaded, dict):
                    self._manifest = loaded
            except (OSError, ValueError):
                logger.warning("ignoring an unreadable %s", self._manifest_path)
        self.reused: list[str] = []

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        extra = path.with_name(path.name + ".data")
        if extra.is_file():
            files.append(extra)
        return [sum(p.stat().st_size for p in files), max(p.stat().st_mtime_ns for p in files)]

    def get(self, name: str, key: str, write: Callable[[Path], object]) -> Path:
        """The artifact ``name``: reused if it matches ``key``, else (re)written by ``write``."""
        path = self.folder / name
        record = self._manifest.get(name)
        if (
            isinstance(record, dict)
            and record.get("key") == key
            and path.exists()
            and record.get("stamp") == self._stamp(path)
        ):
            self.reused.append(name)
            logger.info("reusing %s", path)
            return path
        if self._manifest.pop(name, None) is not None:
            # Forget the old file before touching it: a run killed while writing the new one
            # must leave no record that would vouch for the half-written file.
            write_atomic(self._manifest_path, json.dumps(self._manifest, indent=2))
        for stale in (path, path.with_name(path.name + ".data")):
            if stale.is_symlink():
                # Written afresh, never through a link (one planted in a shared folder would
                # make the export overwrite the file it points to).
                stale.unlink()
        if path.is_dir():
            shutil.rmtree(path)
        write(path)
        self._manifest[name] = {"key": key, "stamp": self._stamp(path)}
        write_atomic(self._manifest_path, json.dumps(self._manifest, indent=2))
        return path


@contextlib.contextmanager
def work_folder(work_dir: Path | None) -> Iterator[Path]:
    """``work_dir`` (created if needed), or a temporary folder removed afterwards."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="pyinfer-bench-") as tmp:
        yield Path(tmp)
