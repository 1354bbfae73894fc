"""Energy per inference: the CPU packages' RAPL counters and an NVIDIA GPU's NVML energy counter.

RAPL (Intel, and AMD since Zen) is read through Linux's powercap files,
``/sys/class/powercap/intel-rapl:N/energy_uj`` (one per package; sub-zones ``intel-rapl:N:M``
are parts of it and are not added again), in microjoules, wrapping at ``max_energy_range_uj``.
Since Linux 5.10 these files are readable by root only, and virtual machines rarely have them:
the reading then says why it is unavailable. On an NVIDIA GPU, NVML's total energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and later) is read through
``pynvml``, imported here only.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfer.errors import InvalidArgumentError

__all__ = ["POWERCAP", "EnergyReading", "measure_energy", "rapl_domains", "read_rapl_uj"]

logger = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class EnergyReading:
    """The energy of a run of calls, from one source.

    Attributes:
        source: ``"RAPL"`` (with its domains) or ``"NVML GPU N"``.
        joules: Energy over the run, or ``None`` when unavailable.
        seconds: Wall time of the run.
        inferences: Inferences in the run (calls x batch).
        unavailable: Why there is no reading (``None`` when there is one).
    """

    source: str
    joules: float | None
    seconds: float
    inferences: int
    unavailable: str | None = None

    @property
    def joules_per_inference(self) -> float | None:
        """Joules per inference (``None`` when unavailable)."""
        if self.joules is None or self.inferences == 0:
            return None
        return self.joules / self.inferences

    @property
    def average_watts(self) -> float | None:
        """Mean power over the run (``None`` when unavailable)."""
        if self.joules is None or self.seconds <= 0:
            return None
        return self.joules / self.seconds

    def line(self) -> str:
        """``RAPL package-0: 0.412 J per inference, 31.2 W average`` or the reason."""
        if self.unavailable is not None:
            return f"Energy ({self.source}): unavailable: {self.unavailable}"
        return (
            f"Energy ({self.source}): {self.joules_per_inference:.4g} J per inference, "
            f"{self.average_watts:.1f} W average over {self.seconds:.2f} s"
        )


def rapl_domains(root: Path = POWERCAP) -> list[Path] | str:
    """The package-level RAPL zones under ``root``, or why there are none readable."""
    if not root.is_dir():
        return f"no {root} (no powercap support in this kernel or container)"
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
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


def _rapl_joules(before: dict[Path, int], after: dict[Path, int]) -> float:
    total = 0
    for zone, start in before.items():
        delta = after[zone] - start
        if delta < 0:  # the counter wrapped
            delta += int((zone / "max_energy_range_uj").read_text().strip())
        total += delta
    return total / 1e6


def _nvml(gpu_index: int) -> tuple[Any, Any] | str:
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError:
        return "pynvml is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:  # NVMLError and its subclasses: no driver, no counter
        return f"NVML has no energy counter for GPU {gpu_index}: {exc}"
    return pynvml, handle


def measure_energy(
    call: Callable[[], object],
    calls: int,
    batch_size: int,
    *,
    gpu_index: int | None = None,
    powercap_root: Path = POWERCAP,
) -> EnergyReading:
    """Runs ``call`` ``calls`` times and reads the energy it took.

    Args:
        call: One inference call (waiting for the device to finish, for a GPU).
        calls: Calls to run.
        batch_size: Inferences per call.
        gpu_index: Read this NVIDIA GPU's NVML counter instead of the CPU's RAPL.
        powercap_root: Where the powercap files are (a fake tree in tests).

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
    if gpu_index is not None:
        source = f"NVML GPU {gpu_index}"
        found = _nvml(gpu_index)
        if isinstance(found, str):
            return EnergyReading(source, None, 0.0, inferences, found)
        pynvml, handle = found
        start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        start = time.perf_counter()
        for _ in range(calls):
            call()
        seconds = time.perf_counter() - start
        joules = (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - start_mj) / 1e3
        return EnergyReading(source, joules, seconds, inferences)
    zones = rapl_domains(powercap_root)
    if isinstance(zones, str):
        return EnergyReading("RAPL", None, 0.0, inferences, zones)
    source = "RAPL " + ", ".join(_zone_name(z) for z in zones)
    before = read_rapl_uj(zones)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    seconds = time.perf_counter() - start
    return EnergyReading(source, _rapl_joules(before, read_rapl_uj(zones)), seconds, inferences)


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name
