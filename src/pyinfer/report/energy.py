"""Energy per inference as a result: :class:`EnergyReading`, and several runs' readings as one.

The counters are read by :mod:`pyinfer.profiling.energy` (RAPL through powercap, NVML on an
NVIDIA GPU) around the throughput run's timed calls; the reading is kept in the report's
``throughput.energy`` (schema 1.3) and shown as its ``Energy:`` line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EnergyReading", "combine_energy"]


@dataclass(frozen=True)
class EnergyReading:
    """The energy of a run of calls, from one source.

    Attributes:
        source: ``"RAPL package-0, package-1"`` (the zones read) or ``"NVML GPU N"``.
        joules: Energy over the run, or ``None`` when unavailable.
        seconds: Wall time of the run the counters were read around.
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

    def text(self) -> str:
        """``0.84 J per inference, 31.2 W average over 2.00 s (RAPL package-0)`` or the reason."""
        per_inference, watts = self.joules_per_inference, self.average_watts
        if self.unavailable is not None or per_inference is None or watts is None:
            why = self.unavailable or f"no inference or no time measured ({self.source})"
            return f"unavailable: {why}"
        return (
            f"{per_inference:.4g} J per inference, {watts:.1f} W average over "
            f"{self.seconds:.2f} s ({self.source})"
        )

    def line(self) -> str:
        """The report's line: ``Energy: `` then :meth:`text`."""
        return f"Energy: {self.text()}"


def combine_energy(readings: Sequence[EnergyReading | None]) -> EnergyReading | None:
    """Several runs' readings as one: joules, seconds and inferences summed.

    The sum gives the joules per inference and the mean power over all the runs together (each
    run weighs by its inferences and its time, not one run one vote). Readings that are
    unavailable are left out of the sum; when none is available, the first one's reason stands.

    Args:
        readings: Each run's reading (``None``: the run read none).

    Returns:
        The combined reading, or ``None`` when no run read one.
    """
    read = [r for r in readings if r is not None]
    if not read:
        return None
    available = [r for r in read if r.unavailable is None and r.joules is not None]
    if not available:
        return read[0]
    if len(available) == 1:
        return available[0]
    sources = list(dict.fromkeys(r.source for r in available))
    return EnergyReading(
        source="; ".join(sources),
        joules=sum(r.joules or 0.0 for r in available),
        seconds=sum(r.seconds for r in available),
        inferences=sum(r.inferences for r in available),
    )
