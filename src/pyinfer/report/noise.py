"""Noise: what else the machine did while a measurement ran, as recorded in its report.

Timings taken while other processes kept the CPUs busy, or while a hypervisor stole CPU time,
are slower and more variable than the model is; a report says so with the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NoiseReading"]


@dataclass(frozen=True)
class NoiseReading:
    """The machine's load while a measurement ran (``/proc`` sampled meanwhile).

    Attributes:
        duration_s: How long the sampling covered.
        samples: Samples taken.
        other_cpus_busy: CPUs kept busy by other processes on average (0.9: most of a CPU);
            ``None`` where ``/proc`` cannot tell.
        other_cpus_busy_max: The highest sample of it.
        load_average_max: The highest 1-minute load average seen (it counts this process's
            threads too).
        steal_percent: CPU time a hypervisor gave to others, in % of the CPUs' time.
        noisy: Whether the load was enough to distort the timings.
        reasons: One line per finding, with its figures (empty when quiet).
    """

    duration_s: float
    samples: int
    other_cpus_busy: float | None
    other_cpus_busy_max: float | None
    load_average_max: float | None
    steal_percent: float | None
    noisy: bool
    reasons: tuple[str, ...] = ()
