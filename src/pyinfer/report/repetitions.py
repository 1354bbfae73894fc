"""Repetitions: one measurement repeated in fresh processes, and what the runs say together.

A single process measures precisely but not reproducibly: the same model in a fresh process
can sit in another mode (memory layout, core placement, the machine's other work), so the
confidence interval of one run's samples says nothing about the next run. Repetitions measure
the same thing in several fresh worker processes; the between-run variance of their medians
sets the interval of the median and the "reproducible within X%" figure.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_REPRODUCIBILITY_TARGET", "Repetitions", "RunSummary"]

#: Results are to be reproducible within 10% across runs: a repeat of the whole measurement is
#: expected (95%) within this fraction of the median reported.
DEFAULT_REPRODUCIBILITY_TARGET = 0.10


@dataclass(frozen=True)
class RunSummary:
    """One repetition: a fresh worker process's latency measurement.

    Attributes:
        median_ms: Median latency of the run's timed calls.
        samples: Timed calls in the run.
        stable: Whether the run met its own (within-run) stability target.
        wall_s: Wall time of its timed calls.
    """

    median_ms: float
    samples: int
    stable: bool
    wall_s: float


@dataclass(frozen=True)
class Repetitions:
    """The runs of a repeated measurement and the between-run figures.

    Attributes:
        runs: One summary per repetition, in the order run.
        median_ms: The median reported (of all runs' samples pooled).
        interval_low_ms: Lower end of the 95% interval of the median, from the between-run
            variance (``None`` with fewer than 2 runs).
        interval_high_ms: Upper end (``None`` with fewer than 2 runs).
        spread: Slowest run median over fastest (1.0 for one run).
        cv_percent: Coefficient of variation of the run medians, in % (``None`` below 2 runs).
        reproducibility: A repeat of the whole measurement is expected (95%) within this
            fraction of ``median_ms`` (``None`` with fewer than 2 runs: not measured).
        reproducibility_target: The fraction ``reproducibility`` is judged against.
        method: How the interval was computed, for reports.
    """

    runs: tuple[RunSummary, ...]
    median_ms: float
    interval_low_ms: float | None
    interval_high_ms: float | None
    spread: float
    cv_percent: float | None
    reproducibility: float | None
    reproducibility_target: float = DEFAULT_REPRODUCIBILITY_TARGET
    method: str = ""

    @property
    def count(self) -> int:
        """Repetitions made."""
        return len(self.runs)

    @property
    def reproducible(self) -> bool | None:
        """Whether ``reproducibility`` is within its target (``None``: not measured)."""
        if self.reproducibility is None:
            return None
        return self.reproducibility <= self.reproducibility_target

    @property
    def within_run_stable(self) -> bool:
        """Whether every run met its own stability target."""
        return all(run.stable for run in self.runs)
