"""One measurement per device at a time: refused within a process, noted across processes.

Two measurements that run at once on one device distort each other (they share its cores, caches,
memory bandwidth and clocks). :func:`measuring` guards a :class:`~pyinfer.PerformanceProfiler`
measurement:

* **In this process**, a measurement that starts on a device while another thread measures on it
  is refused with :class:`~pyinfer.errors.MeasurementConflictError`. The thread that holds the
  device may nest measurements (``profile`` runs ``measure_latency``...).
* **Across processes**, each measuring process holds an advisory ``flock`` on a file of its own,
  ``<lock dir>/<device>.<pid>.lock`` (the lock dir is ``$PYINFER_LOCK_DIR``, else
  ``pyinfer-locks-<uid>`` in the temp dir). At the start and end of a measurement, and when a
  report is made, the other files of the device are probed: one whose lock is held belongs to a
  process measuring now. It is not refused (CI jobs may overlap on purpose): it is logged as a
  warning, returned in :attr:`DeviceClaim.overlaps` (the profiler writes it into the report's
  environment), and a line is appended to that process's file, so it learns of the overlap too
  even when this measurement ends first. A file whose lock is free was left by a process that
  died: it is removed. The kernel drops a dead process's ``flock``, so nothing stays locked.

Nothing here fails a measurement over the lock files: where they cannot be used (a read-only
temp dir, no ``fcntl``), the cross-process check is skipped and logged at debug level.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyinfer.errors import MeasurementConflictError

#: Whether lock files can be used (``fcntl.flock``: POSIX).
CROSS_PROCESS = sys.platform != "win32"
if sys.platform != "win32":
    import fcntl

__all__ = ["DeviceClaim", "Overlaps", "held", "lock_dir", "measuring"]

logger = logging.getLogger(__name__)

#: Environment variable naming the folder of the per-process lock files.
LOCK_DIR_VARIABLE = "PYINFER_LOCK_DIR"


@dataclass
class DeviceClaim:
    """A device held for a measurement by this process.

    Attributes:
        device: The device, ``"cpu"`` or ``"cuda:N"``.
        what: The measurement holding it (``"profile of model 'resnet'"``).
        overlaps: Other processes seen measuring on the device during this claim, one line each.
    """

    device: str
    what: str
    overlaps: list[str] = field(default_factory=list)
    _thread: int = 0
    _thread_name: str = ""
    _depth: int = 0
    _fd: int | None = None
    _path: Path | None = None
    _seen: set[int] = field(default_factory=set)

    def check(self) -> list[str]:
        """Looks again for other processes measuring on the device; returns every overlap so far.

        Returns:
            :attr:`overlaps`, updated.
        """
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._read_notes()
                self._scan()
        return self.overlaps

    # -- the lock files --------------------------------------------------------------------

    def _acquire_file(self) -> None:
        if not CROSS_PROCESS:  # pragma: no cover - not POSIX
            return
        folder = lock_dir()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            final = folder / f"{_device_key(self.device)}.{os.getpid()}.lock"
            temporary = final.with_suffix(".tmp")
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            logger.debug("no cross-process measurement lock (%s): %s", folder, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            header = {"pid": os.getpid(), "what": self.what, "device": self.device}
            os.write(fd, (json.dumps(header) + "\n").encode())
            temporary.replace(final)  # visible to others only once locked
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            logger.debug("no cross-process measurement lock (%s): %s", final, exc)
            return
        self._fd, self._path = fd, final
        self._scan()

    def _release_file(self) -> None:
        fd, path = self._fd, self._path
        if fd is None or path is None:
            return
        self._fd = self._path = None
        try:
            with contextlib.suppress(OSError):
                self._read_notes(fd)
                self._scan(own=path)
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: nobody takes it for a dead process's file
        finally:
            os.close(fd)  # drops the flock

    def _read_notes(self, fd: int | None = None) -> None:
        """Overlaps other processes appended to this process's file."""
        handle = self._fd if fd is None else fd
        if handle is None:
            return
        data = os.pread(handle, 1 << 16, 0).decode("utf-8", "replace")
        for line in data.splitlines()[1:]:
            try:
                note = json.loads(line)
                self._note(int(note["pid"]), str(note["what"]), tell=None)
            except (ValueError, KeyError, TypeError):
                continue

    def _scan(self, own: Path | None = None) -> None:
        """Probes the device's other lock files: held ones are noted, free ones removed."""
        mine = own or self._path
        try:
            candidates = sorted(lock_dir().glob(f"{_device_key(self.device)}.*.lock"))
        except OSError:
            return
        for path in candidates:
            if path == mine:
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    header = os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n", 1)[0]
                    try:
                        info = json.loads(header)
                        pid, what = int(info["pid"]), str(info["what"])
                    except (ValueError, KeyError, TypeError):
                        pid, what = _pid_of(path), "a measurement"
                    self._note(pid, what, tell=fd)
                    continue
                # Free: its process is gone. Remove it, unless a new file replaced it meanwhile.
                with contextlib.suppress(OSError):
                    if path.stat().st_ino == os.fstat(fd).st_ino:
                        path.unlink()
            except OSError:
                continue
            finally:
                os.close(fd)

    def _note(self, pid: int, what: str, *, tell: int | None) -> None:
        if tell is not None and pid not in self._seen:
            line = {"pid": os.getpid(), "what": self.what}
            with contextlib.suppress(OSError):
                os.write(tell, (json.dumps(line) + "\n").encode())
        if pid in self._seen or pid == os.getpid():
            return
        self._seen.add(pid)
        text = (
            f"another pyinfer process (pid {pid}, {what}) measured on {self.device} at the same "
            "time: the figures of both may be distorted"
        )
        self.overlaps.append(text)
        logger.warning("%s: %s", self.what, text)


_lock = threading.Lock()
_claims: dict[str, DeviceClaim] = {}


def lock_dir() -> Path:
    """The folder of the per-process lock files (``$PYINFER_LOCK_DIR`` or one in the temp dir)."""
    given = os.environ.get(LOCK_DIR_VARIABLE)
    if given:
        return Path(given)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"pyinfer-locks-{uid}"


def _device_key(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", device) or "device"


def _pid_of(path: Path) -> int:
    try:
        return int(path.name.split(".")[-2])
    except (ValueError, IndexError):
        return -1


@contextlib.contextmanager
def measuring(device: str, what: str) -> Iterator[DeviceClaim]:
    """Holds ``device`` for a measurement (see the module's docstring).

    Args:
        device: The device measured on, ``"cpu"`` or ``"cuda:N"``.
        what: The measurement, for messages: ``"measure_latency of model 'resnet'"``.

    Yields:
        The claim (the outermost one when this thread already holds the device).

    Raises:
        MeasurementConflictError: If another thread of this process measures on ``device``.
    """
    me = threading.get_ident()
    with _lock:
        claim = _claims.get(device)
        if claim is not None and claim._thread != me:
            raise MeasurementConflictError(
                f"cannot start {what} on {device}: {claim.what} is running on {device} in "
                f"thread '{claim._thread_name}'. Two measurements on one device distort each "
                "other: run them one after another (join the other thread first), or on "
                "different devices"
            )
        outermost = claim is None
        if claim is None:
            claim = DeviceClaim(device, what, _thread=me, _thread_name=_thread_name())
            _claims[device] = claim
        claim._depth += 1
    try:
        if outermost:
            claim._acquire_file()
        yield claim
    finally:
        with _lock:
            claim._depth -= 1
            last = claim._depth == 0
        if last:
            try:
                claim._release_file()
            finally:
                with _lock:
                    del _claims[device]  # only now may another thread claim the device


def held(device: str) -> DeviceClaim | None:
    """The claim on ``device`` if this thread holds one, else ``None``."""
    with _lock:
        claim = _claims.get(device)
    return claim if claim is not None and claim._thread == threading.get_ident() else None


def _thread_name() -> str:
    return threading.current_thread().name


class Overlaps:
    """The other measurements seen on one device across a profiler's measurements.

    Each measurement holds the device through :meth:`measuring`; what its claim saw (other
    processes measuring on the same device meanwhile) is kept, once per line, in
    :attr:`lines`, in the order seen.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        #: One line per other measurement seen, in the order seen.
        self.lines: list[str] = []

    @contextlib.contextmanager
    def measuring(self, what: str) -> Iterator[None]:
        """Holds the device for a measurement named ``what`` (see :func:`measuring`).

        Raises:
            MeasurementConflictError: If another thread of this process measures on the device.
        """
        claim: DeviceClaim | None = None
        try:
            with measuring(self.device, what) as claim:
                yield
        finally:
            if claim is not None:
                self.merge(claim.overlaps)

    def merge(self, lines: Iterable[str]) -> None:
        """Adds the lines not seen yet."""
        for line in lines:
            if line not in self.lines:
                self.lines.append(line)

    def now(self) -> list[str]:
        """Every overlap seen so far, looking again if a measurement holds the device now."""
        claim = held(self.device)
        if claim is not None:
            self.merge(claim.check())
        return list(self.lines)
