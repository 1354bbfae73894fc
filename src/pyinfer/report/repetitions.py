"""Repetitions: one measurement repeated in fresh processes, and what the runs say together.

A single process measures precisely but not reproducibly: the same model in a fresh process
can sit in another mode (memory layout, core placement, the machine's other work), so the
confidence interval of one run's samples says nothing about the next run. Repetitions measure
the same thing in several fresh worker processes; the between-run variance of their medians
sets the interval of the median and the "reproducible within X%" figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.stats import student_t_quantile

__all__ = [
    "DEFAULT_REPRODUCIBILITY_TARGET",
    "INTERVAL_CONFIDENCE",
    "Repetitions",
    "RunSummary",
    "summarize_runs",
]

#: Results are to be reproducible within 10% across runs: a repeat of the whole measurement is
#: expected (95%) within this fraction of the median reported.
DEFAULT_REPRODUCIBILITY_TARGET = 0.10

#: Coverage of the interval of the median and of the reproducibility figure.
INTERVAL_CONFIDENCE = 0.95


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
        in_one_process: Whether the runs shared one process (the C++ harness's repetitions, or
            a callable that cannot be re-imported) rather than each a fresh process. Runs in one
            process share its state (allocator, caches, the machine's speed state at the time),
            so their spread understates what the next process sees.
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
    in_one_process: bool = False

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

    @property
    def run_medians_ms(self) -> tuple[float, ...]:
        """Each run's median, in the order run."""
        return tuple(run.median_ms for run in self.runs)


def _run_samples(samples_ns_per_run: Sequence[npt.ArrayLike]) -> list[npt.NDArray[np.float64]]:
    """Each run's samples as a flat float array, checked."""
    runs = []
    for i, values in enumerate(samples_ns_per_run):
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            raise InvalidArgumentError(f"repetitions: run {i + 1} has no samples")
        if not np.all(np.isfinite(arr)):
            raise InvalidArgumentError(f"repetitions: run {i + 1} has a sample that is not finite")
        if float(np.median(arr)) <= 0.0:
            raise InvalidArgumentError(f"repetitions: run {i + 1} has a median of 0 or less")
        runs.append(arr)
    return runs


def summarize_runs(
    samples_ns_per_run: Sequence[npt.ArrayLike],
    *,
    stable: Sequence[bool],
    wall_s: Sequence[float],
    target: float = DEFAULT_REPRODUCIBILITY_TARGET,
    in_one_process: bool = False,
) -> Repetitions:
    """What several runs of one measurement say together.

    The median reported is that of every run's samples pooled. The between-run figures work on
    the logs of the run medians, since latency varies by factors: with ``n`` runs, ``s`` their
    standard deviation (ddof=1) and ``t`` Student's 0.975 quantile with ``n - 1`` degrees of
    freedom, the 95% interval of the median is ``median * exp(-+ t * s / sqrt(n))`` and a repeat
    of the whole measurement (itself ``n`` runs; the difference of two means of ``n`` has the
    deviation ``s * sqrt(2 / n)``) is expected within ``exp(t * s * sqrt(2 / n)) - 1`` of it:
    the reproducibility. Spread is the slowest run median over the fastest, the CV the run
    medians' standard deviation (ddof=1) over their mean.

    Args:
        samples_ns_per_run: Each run's latency samples, in nanoseconds, in the order run.
        stable: Whether each run met its own stability target.
        wall_s: Each run's wall time of timed calls, in seconds.
        target: The reproducibility target (0.10: within 10%).
        in_one_process: Whether the runs shared one process (recorded, and said in reports).

    Returns:
        The runs and the between-run figures; with one run the interval, CV and
        reproducibility are ``None`` (not measured) and the spread is 1.0.

    Raises:
        InvalidArgumentError: If there are no runs, a run has no samples, a sample or wall
            time is not finite, a run's median is not above 0, the three sequences differ in
            length, or ``target`` is not above 0 and finite.
    """
    if len(samples_ns_per_run) == 0:
        raise InvalidArgumentError("repetitions: no runs")
    if len(stable) != len(samples_ns_per_run) or len(wall_s) != len(samples_ns_per_run):
        raise InvalidArgumentError(
            f"repetitions: {len(samples_ns_per_run)} runs of samples, but {len(stable)} "
            f"stability flags and {len(wall_s)} wall times"
        )
    if not all(math.isfinite(w) and w >= 0.0 for w in wall_s):
        raise InvalidArgumentError(
            f"repetitions: wall times must be finite and 0 or more, got {list(wall_s)}"
        )
    if not 0.0 < target < math.inf:
        raise InvalidArgumentError(
            f"repetitions: the reproducibility target must be above 0 and finite, got {target}"
        )
    runs = _run_samples(samples_ns_per_run)
    medians_ms = np.asarray([float(np.median(r)) / 1e6 for r in runs])
    summaries = tuple(
        RunSummary(float(med), int(r.size), bool(ok), float(w))
        for med, r, ok, w in zip(medians_ms, runs, stable, wall_s, strict=True)
    )
    median_ms = float(np.median(np.concatenate(runs))) / 1e6
    n = len(runs)
    if n < 2:
        return Repetitions(
            summaries, median_ms, None, None, 1.0, None, None, target, "one run", in_one_process
        )
    s = float(np.std(np.log(medians_ms), ddof=1))
    t = student_t_quantile(INTERVAL_CONFIDENCE, n - 1)
    half = t * s / math.sqrt(n)
    return Repetitions(
        runs=summaries,
        median_ms=median_ms,
        interval_low_ms=median_ms * math.exp(-half),
        interval_high_ms=median_ms * math.exp(half),
        spread=float(medians_ms.max() / medians_ms.min()),
        cv_percent=float(np.std(medians_ms, ddof=1) / np.mean(medians_ms) * 100.0),
        reproducibility=math.expm1(t * s * math.sqrt(2.0 / n)),
        reproducibility_target=target,
        method=f"t interval over {n} run medians, log scale",
        in_one_process=in_one_process,
    )
