"""Repetitions: one measurement repeated in fresh processes, and what the runs say together.

A single process measures precisely but not reproducibly: the same model in a fresh process
can sit in another mode (memory layout, core placement, the machine's other work), so the
confidence interval of one run's samples says nothing about the next run. Repetitions measure
the same thing in several fresh worker processes; the between-run variance of their medians
sets the interval of the median and the "reproducible within X%" figure.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_REPRODUCIBILITY_TARGET", "Repetitions", "RunSummary", "summarize_runs"]

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


def summarize_runs(samples_ns_per_run, *, stable, wall_s, target=DEFAULT_REPRODUCIBILITY_TARGET):  # type: ignore[no-untyped-def]  # TEMP: replaced by the stats helper's
    import math

    import numpy as np

    runs = tuple(
        RunSummary(float(np.median(s)) / 1e6, int(np.size(s)), bool(st), float(w))
        for s, st, w in zip(samples_ns_per_run, stable, wall_s, strict=True)
    )
    pooled = float(np.median(np.concatenate([np.asarray(s) for s in samples_ns_per_run]))) / 1e6
    med = np.array([r.median_ms for r in runs])
    if len(runs) < 2:
        return Repetitions(runs, pooled, None, None, 1.0, None, None, target, "one run")
    logs = np.log(med)
    s = float(logs.std(ddof=1))
    n = len(runs)
    t = {
        1: 12.706,
        2: 4.303,
        3: 3.182,
        4: 2.776,
        5: 2.571,
        6: 2.447,
        7: 2.365,
        8: 2.306,
        9: 2.262,
    }.get(n - 1, 2.0)
    half = t * s / math.sqrt(n)
    return Repetitions(
        runs,
        pooled,
        pooled * math.exp(-half),
        pooled * math.exp(half),
        float(med.max() / med.min()),
        float(med.std(ddof=1) / med.mean() * 100),
        math.exp(t * s * math.sqrt(2 / n)) - 1,
        target,
        "temp",
    )
