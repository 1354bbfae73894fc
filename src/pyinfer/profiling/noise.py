"""Noise detection: how busy other processes kept the CPUs while a measurement ran.

:class:`NoiseMonitor` is a context manager around a measurement. A daemon thread samples
``/proc`` every :data:`SAMPLE_INTERVAL_S` (plus a sample as it starts and one as it ends, so even
a short run has one interval) and the reading says:

* **Other processes' CPU time**: the busy time of the CPUs this process may run on
  (``/proc/stat``: user, nice, system, irq, softirq) minus this process's own (``/proc/self/stat``
  utime + stime, every thread), over the time that passed, in CPUs (0.97: most of a CPU). The
  kernel counts CPU time in ticks (``USER_HZ``, 100 a second on most systems), so one 0.2 s
  interval reads within about 0.1 CPU: the average is taken over the whole window (exact to a
  tick or two), single intervals only give the maximum. A window shorter than
  :data:`MIN_JUDGED_TICKS` ticks per CPU is reported but not judged.
* **CPU steal**: the share of the CPUs' time a hypervisor gave to other guests.
* **Load average**: the highest 1-minute figure seen (``/proc/loadavg``). It counts this
  process's own threads too, so it is shown, not judged.

The thresholds (:data:`~pyinfer.report.noise.BUSY_CPUS`,
:data:`~pyinfer.report.noise.STEAL_PERCENT`) and the record live in :mod:`pyinfer.report.noise`.
Off Linux, or where ``/proc`` cannot be read, the figures are ``None`` and the reading is not
noisy. The monitor never raises into the
measurement: a sample that fails is logged (debug) and sampling stops. Its cost is reading three
small files every 0.2 s (tens of microseconds).

:func:`sample_machine` samples the machine for a moment while this process idles, with the
busiest processes (``pyinfer env --check``).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pyinfer.report.noise import NoiseReading, noise_reasons

__all__ = [
    "MIN_JUDGED_TICKS",
    "SAMPLE_INTERVAL_S",
    "BusyProcess",
    "CpuTimes",
    "NoiseMonitor",
    "busiest_processes",
    "read_cpu_times",
    "read_load_average",
    "read_own_cpu_ticks",
    "read_process_ticks",
    "sample_machine",
]

logger = logging.getLogger(__name__)

#: Seconds between samples: the maximum is read over intervals this long (about 20 kernel ticks
#: per CPU, so within 0.1 CPU), and the cost stays at a few file reads a second.
SAMPLE_INTERVAL_S = 0.2
#: A window of fewer ticks per CPU than this (0.1 s at 100 ticks a second) is not judged: one
#: tick of rounding would be a tenth of a CPU.
MIN_JUDGED_TICKS = 10

# /proc/stat's columns: user nice system idle iowait irq softirq steal (guest time is in user).
_USER, _NICE, _SYSTEM, _IDLE, _IOWAIT, _IRQ, _SOFTIRQ, _STEAL = range(8)


def _read_text(path: Path) -> str:
    """A small ``/proc`` file's text (``os.read``: no buffering layers; the GIL is released).

    Raises:
        OSError: If it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 100


@dataclass(frozen=True)
class CpuTimes:
    """CPU time of a set of CPUs since boot, in kernel ticks (``/proc/stat``).

    Attributes:
        busy: Time running anything (user, nice, system, irq, softirq).
        idle: Time idle (idle, iowait).
        steal: Time a hypervisor gave to other guests.
        total: All of it (busy, idle, steal).
        cpus: How many CPUs were summed.
    """

    busy: int
    idle: int
    steal: int
    total: int
    cpus: int


def read_cpu_times(
    cpus: Collection[int] | None = None, *, root: Path = Path("/")
) -> CpuTimes | None:
    """The CPU times of ``cpus`` (all CPUs when ``None``), or ``None`` where unreadable.

    Args:
        cpus: Logical CPU numbers; those missing from ``/proc/stat`` are left out, and when
            none is there the machine's total line is read instead.
        root: The file system root (tests give a fake ``proc/stat``).

    Returns:
        The summed times.
    """
    try:
        text = _read_text(root / "proc" / "stat")
    except OSError:
        return None
    rows: dict[str, list[int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            break  # the CPU lines come first
        name, *fields = line.split()
        try:
            values = [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if len(values) >= 5:
            rows[name] = values + [0] * (8 - len(values))
    chosen = [rows[f"cpu{c}"] for c in sorted(cpus or ()) if f"cpu{c}" in rows]
    count = len(chosen)
    if not chosen:
        if "cpu" not in rows:
            return None
        chosen = [rows["cpu"]]
        count = sum(1 for name in rows if name != "cpu") or 1
    busy = sum(v[_USER] + v[_NICE] + v[_SYSTEM] + v[_IRQ] + v[_SOFTIRQ] for v in chosen)
    idle = sum(v[_IDLE] + v[_IOWAIT] for v in chosen)
    steal = sum(v[_STEAL] for v in chosen)
    return CpuTimes(busy=busy, idle=idle, steal=steal, total=busy + idle + steal, cpus=count)


def _stat_ticks(text: str) -> tuple[str, int] | None:
    """A process's name and utime + stime from its ``stat`` line (the name may hold spaces)."""
    head, sep, tail = text.rpartition(")")
    if not sep:
        return None
    fields = tail.split()
    try:  # fields 14 and 15 of the line; the tail starts at field 3 (the state)
        ticks = int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None
    return head.partition("(")[2], ticks


def read_own_cpu_ticks(*, root: Path = Path("/")) -> int | None:
    """This process's CPU time (every thread, user + system) in ticks, or ``None``."""
    try:
        text = _read_text(root / "proc" / "self" / "stat")
    except OSError:
        return None
    parsed = _stat_ticks(text)
    return None if parsed is None else parsed[1]


def read_load_average(*, root: Path = Path("/")) -> float | None:
    """The 1-minute load average (``/proc/loadavg``), or ``None``."""
    try:
        return float(_read_text(root / "proc" / "loadavg").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_process_ticks(*, root: Path = Path("/")) -> dict[int, tuple[str, int]]:
    """Every readable process's name and CPU time in ticks, by pid (empty where unreadable)."""
    found: dict[int, tuple[str, int]] = {}
    try:
        entries = list((root / "proc").iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            text = _read_text(entry / "stat")
        except OSError:  # gone meanwhile, or hidden
            continue
        parsed = _stat_ticks(text)
        if parsed is not None:
            found[int(entry.name)] = parsed
    return found


@dataclass(frozen=True)
class BusyProcess:
    """A process and how many CPUs it kept busy over a sample.

    Attributes:
        pid: Its process id.
        name: Its command name (``/proc/PID/stat``'s, at most 15 characters).
        cpus: CPUs it kept busy on average (1.0: a whole CPU).
    """

    pid: int
    name: str
    cpus: float


def busiest_processes(
    before: dict[int, tuple[str, int]],
    after: dict[int, tuple[str, int]],
    elapsed_s: float,
    *,
    ticks_per_s: int | None = None,
    exclude: Collection[int] = (),
    top: int = 5,
    at_least: float = 0.05,
) -> list[BusyProcess]:
    """The processes that took the most CPU time between two :func:`read_process_ticks`.

    Args:
        before: The first reading.
        after: The second.
        elapsed_s: Seconds between them.
        ticks_per_s: Kernel ticks a second (default: ``USER_HZ``).
        exclude: Pids to leave out (this process).
        top: At most this many.
        at_least: Leave out those under this many CPUs.

    Returns:
        The busiest first.
    """
    if elapsed_s <= 0.0:
        return []
    rate = float(ticks_per_s or _ticks_per_second()) * elapsed_s
    busy = []
    for pid, (name, ticks) in after.items():
        if pid in exclude or pid not in before:
            continue
        cpus = (ticks - before[pid][1]) / rate
        if cpus >= at_least:
            busy.append(BusyProcess(pid, name, round(cpus, 2)))
    busy.sort(key=lambda p: (-p.cpus, p.pid))
    return busy[:top]


@dataclass(frozen=True)
class _Sample:
    at_s: float
    cpu: CpuTimes
    own_ticks: int
    load: float | None


def _other_cpus(first: _Sample, last: _Sample) -> float | None:
    """CPUs other processes kept busy between two samples (``None`` if no tick passed)."""
    total = last.cpu.total - first.cpu.total
    if total <= 0:
        return None
    per_cpu = total / last.cpu.cpus  # ticks that passed on each CPU
    other = (last.cpu.busy - first.cpu.busy) - (last.own_ticks - first.own_ticks)
    return min(float(last.cpu.cpus), max(0.0, other / per_cpu))


class NoiseMonitor:
    """Samples the machine's load while a measurement runs; :meth:`reading` says what it saw.

    Example:
        >>> with NoiseMonitor() as monitor:
        ...     run_the_measurement()
        >>> monitor.reading().noisy
        False
    """

    def __init__(
        self,
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        cpus: Collection[int] | None = None,
        root: Path = Path("/"),
        during: str = "while the latency was measured",
        clock: Callable[[], float] = time.monotonic,
        read_cpu: Callable[[], CpuTimes | None] | None = None,
        read_own: Callable[[], int | None] | None = None,
        read_load: Callable[[], float | None] | None = None,
        thread: bool = True,
    ) -> None:
        """Creates a monitor (nothing is read until it is entered).

        Args:
            interval_s: Seconds between samples.
            cpus: The CPUs to watch (default: those this process may run on).
            root: The file system root whose ``proc`` is read.
            during: When, as the reasons say it.
            clock: Seconds from a monotonic origin (the reading's duration).
            read_cpu: Reads the watched CPUs' times (default: :func:`read_cpu_times`).
            read_own: Reads this process's CPU ticks (default: :func:`read_own_cpu_ticks`).
            read_load: Reads the load average (default: :func:`read_load_average`).
            thread: Whether to sample from a thread; without it only :meth:`sample` (and the
                start and end) take samples (tests).
        """
        if cpus is None:
            try:
                cpus = sorted(os.sched_getaffinity(0))
            except (AttributeError, OSError):  # pragma: no cover - not Linux
                cpus = None
        watched = None if cpus is None else tuple(cpus)
        self.interval_s = interval_s
        self.during = during
        self._clock = clock
        self._read_cpu = read_cpu or (lambda: read_cpu_times(watched, root=root))
        self._read_own = read_own or (lambda: read_own_cpu_ticks(root=root))
        self._read_load = read_load or (lambda: read_load_average(root=root))
        self._use_thread = thread
        self._samples: list[_Sample] = []
        self._loads: list[float] = []
        self._sampling = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_s: float | None = None
        self._ended_s: float | None = None

    def sample(self) -> bool:
        """Takes one sample; ``False`` (and sampling stops) when ``/proc`` could not be read."""
        if not self._sampling:
            return False
        try:
            at = self._clock()
            cpu, own, load = self._read_cpu(), self._read_own(), self._read_load()
            if load is not None:
                self._loads.append(load)
            if cpu is None or own is None:
                self._sampling = False
                return False
            self._samples.append(_Sample(at, cpu, own, load))
            return True
        except Exception as exc:  # never into the measurement
            logger.debug("noise sampling stopped: %s", exc, exc_info=True)
            self._sampling = False
            return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.sample():
                return

    def __enter__(self) -> NoiseMonitor:
        self._samples, self._loads = [], []
        self._stop.clear()
        self._sampling = True
        self._started_s, self._ended_s = self._clock(), None
        if self.sample() and self._use_thread:
            try:
                self._thread = threading.Thread(target=self._run, name="pyinfer-noise", daemon=True)
                self._thread.start()
            except Exception as exc:  # no thread to spare: start and end samples only
                logger.debug("noise sampling thread not started: %s", exc)
                self._thread = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():  # stuck in a read: leave it, take no more samples
                self._sampling = False
        self.sample()
        self._sampling = False
        self._ended_s = self._clock()

    def reading(self) -> NoiseReading:
        """What the samples say (so far, if still running)."""
        samples = list(self._samples)
        start = self._started_s
        end = self._ended_s if self._ended_s is not None else self._clock()
        duration = 0.0 if start is None else max(0.0, end - start)
        load_max = max(self._loads) if self._loads else None
        cpus = samples[-1].cpu.cpus if samples else 0
        other = _other_cpus(samples[0], samples[-1]) if len(samples) >= 2 else None
        if other is None:
            return NoiseReading(duration, len(samples), None, None, load_max, None, False, (), cpus)
        intervals = [_other_cpus(a, b) for a, b in itertools.pairwise(samples)]
        peak = max([other, *(v for v in intervals if v is not None)])
        first, last = samples[0].cpu, samples[-1].cpu
        total = last.total - first.total
        steal = 100.0 * (last.steal - first.steal) / total
        reasons: tuple[str, ...] = ()
        if total / cpus >= MIN_JUDGED_TICKS:
            reasons = noise_reasons(
                cpus=cpus,
                other_cpus_busy=other,
                other_cpus_busy_max=peak,
                steal_percent=steal,
                during=self.during,
            )
        return NoiseReading(
            duration_s=duration,
            samples=len(samples),
            other_cpus_busy=round(other, 3),
            other_cpus_busy_max=round(peak, 3),
            load_average_max=load_max,
            steal_percent=round(steal, 2),
            noisy=bool(reasons),
            reasons=reasons,
            cpus=cpus,
        )


def sample_machine(
    seconds: float = 0.5,
    *,
    root: Path = Path("/"),
    cpus: Collection[int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[NoiseReading, list[BusyProcess]]:
    """The machine's load over a moment while this process idles, and the busiest processes.

    Args:
        seconds: How long to sample.
        root: The file system root whose ``proc`` is read.
        cpus: The CPUs to watch (default: those this process may run on).
        sleep: Waits (swap it in tests).
        clock: Seconds from a monotonic origin (swap it in tests).

    Returns:
        The reading and the busiest other processes (empty where ``/proc`` hides them).
    """
    started = clock()
    before = read_process_ticks(root=root)
    monitor = NoiseMonitor(
        cpus=cpus, root=root, during=f"over {seconds:g} s just now", clock=clock, thread=False
    )
    with monitor:
        sleep(seconds)
    after = read_process_ticks(root=root)
    elapsed = clock() - started
    busiest = busiest_processes(before, after, elapsed, exclude={os.getpid()})
    return monitor.reading(), busiest
