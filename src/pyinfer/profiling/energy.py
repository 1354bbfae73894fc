"""Energy counters: the CPU packages' RAPL counters and an NVIDIA GPU's NVML energy counter.

RAPL (Intel, and AMD since Zen) is read through Linux's powercap files,
``/sys/class/powercap/intel-rapl:N/energy_uj`` (one per package; sub-zones ``intel-rapl:N:M``
are parts of it and are not added again, nor is a laptop's ``psys`` zone, the whole platform),
in microjoules, wrapping at ``max_energy_range_uj``
(one wrap between two reads is undone; the range is hundreds of kilojoules, minutes at full
power, far more than a throughput run). Since Linux 5.10 these files are readable by root
only, and virtual machines and containers rarely have them: the reading then says why it is
unavailable. On an NVIDIA GPU, NVML's total energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and later) is read through
``pynvml``, imported at first use.

:class:`EnergyMeter` reads the counters twice, around a run of calls (the profiler's throughput
run); :func:`measure_energy` runs the calls between the two reads itself (``pyinfer ops``).
The result is a :class:`~pyinfer.report.energy.EnergyReading`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.energy import EnergyReading

__all__ = [
    "POWERCAP",
    "EnergyMeter",
    "measure_energy",
    "rapl_domains",
    "rapl_joules",
    "read_rapl_uj",
]

logger = logging.getLogger(__name__)

#: Where Linux exposes the RAPL zones (read when a meter starts, so tests can point it elsewhere).
POWERCAP = Path("/sys/class/powercap")


def rapl_domains(root: Path | None = None) -> list[Path] | str:
    """The package-level RAPL zones under ``root`` (default :data:`POWERCAP`), or why none is read.

    Args:
        root: The powercap folder.

    Returns:
        The zones, sorted; or the reason, in words, that none can be read.
    """
    root = POWERCAP if root is None else root
    if not root.is_dir():
        return f"no {root} (no powercap support in this kernel or container)"
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    # A laptop's "psys" zone is the whole platform, the packages included: not added to them.
    zones = [z for z in zones if _zone_name(z) != "psys"]
    if not zones:
        return f"no RAPL zone under {root} (a virtual machine, or a CPU without RAPL)"
    for zone in zones:
        try:
            (zone / "energy_uj").read_text()
        except PermissionError:
            return (
                f"{zone / 'energy_uj'} is not readable by this user (root only since Linux "
                "5.10; run as root or grant read access to the file)"
            )
        except OSError as exc:
            return f"{zone / 'energy_uj'} cannot be read: {exc}"
    return zones


def read_rapl_uj(zones: list[Path]) -> dict[Path, int]:
    """Each zone's counter now, in microjoules."""
    return {zone: int((zone / "energy_uj").read_text().strip()) for zone in zones}


def rapl_joules(before: dict[Path, int], after: dict[Path, int]) -> float:
    """Joules between two reads of the same zones, a counter's wrap-around undone.

    A counter lower after than before wrapped once at its ``max_energy_range_uj``.
    """
    total = 0
    for zone, start in before.items():
        delta = after[zone] - start
        if delta < 0:  # the counter wrapped
            delta += int((zone / "max_energy_range_uj").read_text().strip())
        total += delta
    return total / 1e6


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


def _nvml(gpu_index: int) -> tuple[Any, Any] | str:
    """pynvml, initialised, and the GPU's handle; or why its energy counter cannot be read."""
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError:
        return 'pynvml is not installed (pip install "pyinfer-toolkit[gpu]")'
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError and its subclasses: no driver
        return f"NVML failed: {exc}"
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:  # no such GPU, or one without the counter (before Volta)
        _shutdown(pynvml)
        return f"NVML has no energy counter for GPU {gpu_index}: {exc}"
    return pynvml, handle


def _shutdown(pynvml: Any) -> None:
    try:
        pynvml.nvmlShutdown()
    except Exception as exc:
        logger.debug("nvmlShutdown failed: %s", exc)


class EnergyMeter:
    """Reads the energy counters at :meth:`start` and :meth:`stop`, nothing in between.

    Two reads of a few small files (RAPL) or two NVML queries: nothing runs beside the calls
    measured. Where no counter can be read, :meth:`start` records why and :meth:`stop` returns
    the reading that says so.

    Example:
        >>> meter = EnergyMeter()
        >>> meter.start()
        >>> ...  # the calls
        >>> reading = meter.stop(seconds=2.0, inferences=400)
    """

    def __init__(self, *, gpu_index: int | None = None, powercap_root: Path | None = None) -> None:
        """A meter of the CPU packages (RAPL) or of one NVIDIA GPU (NVML).

        Args:
            gpu_index: Read this GPU's NVML counter (NVML's numbering) instead of RAPL.
            powercap_root: Where the powercap files are (default :data:`POWERCAP`).
        """
        self._gpu = gpu_index
        self._root = powercap_root
        self.source = "RAPL" if gpu_index is None else f"NVML GPU {gpu_index}"
        #: Why no counter is read (``None`` once :meth:`start` found one).
        self.unavailable: str | None = "the meter was not started"
        self._zones: list[Path] = []
        self._before: dict[Path, int] = {}
        self._nvml: Any = None
        self._handle: Any = None
        self._start_mj = 0.0

    def start(self) -> None:
        """Reads the counters (first read); where none is readable, records why."""
        if self._gpu is not None:
            found = _nvml(self._gpu)
            if isinstance(found, str):
                self.unavailable = found
                return
            self._nvml, self._handle = found
            try:
                self._start_mj = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            except Exception as exc:
                self._close()
                self.unavailable = f"NVML failed: {exc}"
                return
            self.unavailable = None
            return
        zones = rapl_domains(self._root)
        if isinstance(zones, str):
            self.unavailable = zones
            return
        try:
            self._before = read_rapl_uj(zones)
        except (OSError, ValueError) as exc:
            self.unavailable = f"the RAPL counters cannot be read: {exc}"
            return
        self._zones = zones
        self.source = "RAPL " + ", ".join(_zone_name(z) for z in zones)
        self.unavailable = None

    def _close(self) -> None:
        if self._nvml is not None:
            _shutdown(self._nvml)
            self._nvml = None

    def stop(self, seconds: float, inferences: int) -> EnergyReading:
        """Reads the counters again (second read) and returns the energy between the reads.

        Args:
            seconds: Wall time between the reads, as the caller measured it.
            inferences: Inferences made between them (calls x batch).

        Returns:
            The reading; ``unavailable`` says why where no counter was read.
        """
        if self.unavailable is not None:
            self._close()
            return EnergyReading(self.source, None, seconds, inferences, self.unavailable)
        try:
            if self._nvml is not None:
                end_mj = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
                joules = (end_mj - self._start_mj) / 1e3
            else:
                joules = rapl_joules(self._before, read_rapl_uj(self._zones))
        except (OSError, ValueError) as exc:
            return EnergyReading(self.source, None, seconds, inferences, f"second read: {exc}")
        except Exception as exc:  # an NVMLError at the second read
            return EnergyReading(self.source, None, seconds, inferences, f"NVML failed: {exc}")
        finally:
            self._close()
        return EnergyReading(self.source, joules, seconds, inferences)


def measure_energy(
    call: Callable[[], object],
    calls: int,
    batch_size: int,
    *,
    gpu_index: int | None = None,
    powercap_root: Path | None = None,
) -> EnergyReading:
    """Runs ``call`` ``calls`` times and reads the energy it took.

    Args:
        call: One inference call (waiting for the device to finish, for a GPU).
        calls: Calls to run.
        batch_size: Inferences per call.
        gpu_index: Read this NVIDIA GPU's NVML counter instead of the CPU's RAPL.
        powercap_root: Where the powercap files are (default :data:`POWERCAP`).

    Returns:
        The reading; with ``unavailable`` set (and the calls not run) where no counter is
        readable.

    Raises:
        InvalidArgumentError: If ``calls`` or ``batch_size`` is under 1.
    """
    if calls < 1 or batch_size < 1:
        raise InvalidArgumentError(
            f"calls and batch_size must be at least 1, not {calls} and {batch_size}"
        )
    inferences = calls * batch_size
    meter = EnergyMeter(gpu_index=gpu_index, powercap_root=powercap_root)
    meter.start()
    if meter.unavailable is not None:
        return meter.stop(0.0, inferences)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return meter.stop(time.perf_counter() - start, inferences)
