"""Noise: what else the machine did while a measurement ran, as recorded in its report.

Timings taken while other processes kept the CPUs busy, or while a hypervisor stole CPU time,
are slower and more variable than the model is; a report says so with the figures. The
readings are taken by :class:`pyinfer.profiling.noise.NoiseMonitor`; this module holds the
record, the thresholds that judge it and the lines that show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BUSY_CPUS",
    "STEAL_PERCENT",
    "NoiseReading",
    "combine_readings",
    "noise_reasons",
    "noise_warning",
]

#: A run is noisy when other processes kept at least this many CPUs busy on average: torch and
#: ONNX Runtime run one thread per core, and a thread that shares its core with another process
#: makes every call wait for it (seen here: ResNet50 eager from 60 ms to over a second per call
#: while another process's test suite ran on one of the 2 cores; MobileNetV2 from 4.8 to 8.2 ms
#: with a busy loop on one of them). Half a CPU is well above what an idle desktop's daemons take
#: (a few hundredths) and well below one busy thread.
BUSY_CPUS = 0.5
#: A run is noisy when a hypervisor gave at least this share (%) of the CPUs' time to other
#: guests: a quiet host steals well under 1%; at a few % the guest's calls stall for whole
#: scheduler slices, which shows in the tail and moves the median.
STEAL_PERCENT = 2.0

_SLOWER = "the timings are slower and noisier than the model"


@dataclass(frozen=True)
class NoiseReading:
    """The machine's load while a measurement ran (``/proc`` sampled meanwhile).

    Attributes:
        duration_s: How long the sampling covered.
        samples: Samples taken.
        other_cpus_busy: CPUs kept busy by other processes on average (0.9: most of a CPU);
            ``None`` where ``/proc`` cannot tell.
        other_cpus_busy_max: The highest of it over one sampling interval (about 0.2 s; the
            kernel counts CPU time in ticks of 10 ms, so a single interval reads within about
            0.1 CPU).
        load_average_max: The highest 1-minute load average seen (it counts this process's
            threads too, so it is shown, not judged).
        steal_percent: CPU time a hypervisor gave to others, in % of the CPUs' time.
        noisy: Whether the load was enough to distort the timings.
        reasons: One line per finding, with its figures (empty when quiet).
        cpus: The CPUs watched: those this process may run on (0 when unknown).
    """

    duration_s: float
    samples: int
    other_cpus_busy: float | None
    other_cpus_busy_max: float | None
    load_average_max: float | None
    steal_percent: float | None
    noisy: bool
    reasons: tuple[str, ...] = ()
    cpus: int = 0

    def summary(self) -> str:
        """The figures on one line: ``"other processes 0.02 of 2 CPUs busy (max 0.10), ..."``."""
        if self.other_cpus_busy is None:
            return f"not measured ({self.samples} samples over {self.duration_s:.2f} s)"
        of_cpus = f" of {self.cpus} CPUs" if self.cpus else " CPUs"
        parts = [f"other processes kept {self.other_cpus_busy:.2f}{of_cpus} busy on average"]
        if self.other_cpus_busy_max is not None:
            parts[0] += f" (max {self.other_cpus_busy_max:.2f})"
        if self.steal_percent is not None:
            parts.append(f"CPU steal {self.steal_percent:.1f}%")
        if self.load_average_max is not None:
            parts.append(f"load average up to {self.load_average_max:.2f}")
        parts.append(f"{self.samples} samples over {self.duration_s:.2f} s")
        return ", ".join(parts)


def noise_reasons(
    *,
    cpus: int,
    other_cpus_busy: float | None,
    other_cpus_busy_max: float | None,
    steal_percent: float | None,
    during: str = "while the latency was measured",
) -> tuple[str, ...]:
    """Why a measurement was noisy, one line per finding with its figures.

    Args:
        cpus: The CPUs watched (0: unknown).
        other_cpus_busy: CPUs other processes kept busy on average.
        other_cpus_busy_max: The highest interval's figure.
        steal_percent: The hypervisor's steal, in %.
        during: When, as the lines say it (``"while the latency was measured"``).

    Returns:
        The reasons (empty when below :data:`BUSY_CPUS` and :data:`STEAL_PERCENT`).
    """
    reasons = []
    if other_cpus_busy is not None and other_cpus_busy >= BUSY_CPUS:
        of_cpus = f" of {cpus} CPUs" if cpus else " CPUs"
        peak = "" if other_cpus_busy_max is None else f" (max {other_cpus_busy_max:.2f})"
        reasons.append(
            f"other processes kept {other_cpus_busy:.2f}{of_cpus} busy on average{peak} "
            f"{during}: {_SLOWER}"
        )
    if steal_percent is not None and steal_percent >= STEAL_PERCENT:
        reasons.append(
            f"the hypervisor gave {steal_percent:.1f}% of the CPUs' time to other virtual "
            f"machines (CPU steal) {during}: {_SLOWER}"
        )
    return tuple(reasons)


def noise_warning(reading: NoiseReading | None, what: str = "") -> str:
    """The stderr warning for a noisy reading (``""`` when quiet or not measured).

    Args:
        reading: The report's reading.
        what: What was measured, to prefix each line (``"mnv2.onnx: "``), if several are.

    Returns:
        ``"warning: ..."`` lines (no trailing newline) ending with where to look for causes.
    """
    if reading is None or not reading.noisy:
        return ""
    lines = [f"warning: {what}{reason}" for reason in reading.reasons]
    lines.append(
        "warning: run `pyinfer env --check` for what makes timings noisy here and how to fix it"
    )
    return "\n".join(lines)


def _weighted(values: list[tuple[float | None, float]]) -> float | None:
    """The mean of the known values weighted by their durations (plain mean if all are 0)."""
    pairs = [(v, w) for v, w in values if v is not None]
    total = sum(w for _, w in pairs)
    if not pairs:
        return None
    if total <= 0.0:
        return sum(v for v, _ in pairs) / len(pairs)
    return sum(v * w for v, w in pairs) / total


def _highest(values: list[float | None]) -> float | None:
    """The largest known value (``None`` if none is)."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


def combine_readings(readings: Sequence[NoiseReading | None]) -> NoiseReading | None:
    """One reading for several runs (the repetitions of a measurement).

    Averages are weighted by each run's duration, maxima are the highest, and the whole is
    noisy when any run was; the reasons give one line per kind of noise, naming the runs it
    hit (1-based) with the figures over those runs.

    Args:
        readings: One per run, in the order run (``None`` for a run not sampled).

    Returns:
        The combined reading, or ``None`` when no run was sampled.
    """
    known = [r for r in readings if r is not None]
    if not known:
        return None
    return NoiseReading(
        duration_s=sum(r.duration_s for r in known),
        samples=sum(r.samples for r in known),
        other_cpus_busy=_weighted([(r.other_cpus_busy, r.duration_s) for r in known]),
        other_cpus_busy_max=_highest([r.other_cpus_busy_max for r in known]),
        load_average_max=_highest([r.load_average_max for r in known]),
        steal_percent=_weighted([(r.steal_percent, r.duration_s) for r in known]),
        noisy=any(r.noisy for r in known),
        reasons=_run_reasons(readings),
        cpus=max(r.cpus for r in known),
    )


def _during(numbers: Sequence[int], total: int) -> str:
    """When: ``"while runs 1, 3 and 4 of 5 measured the latency"``, ``"while all 5 runs ..."``."""
    if total == 1:
        return "while the latency was measured"
    if len(numbers) == total:
        runs = f"all {total} runs"
    elif len(numbers) == 1:
        runs = f"run {numbers[0]} of {total}"
    else:
        runs = "runs " + ", ".join(str(n) for n in numbers[:-1]) + f" and {numbers[-1]} of {total}"
    return f"while {runs} measured the latency"


def _run_reasons(readings: Sequence[NoiseReading | None]) -> tuple[str, ...]:
    """The reasons of the noisy runs, one line per kind of noise naming the runs it hit.

    Each line gives the figures over the runs it names (a busy run's average is not diluted by
    the quiet ones), so five noisy runs make one line, not five.
    """
    total = len(readings)
    numbered = [(i, r) for i, r in enumerate(readings, start=1) if r is not None and r.noisy]
    busy = [(i, r) for i, r in numbered if (r.other_cpus_busy or 0.0) >= BUSY_CPUS]
    stolen = [(i, r) for i, r in numbered if (r.steal_percent or 0.0) >= STEAL_PERCENT]
    reasons: list[str] = []
    if busy:
        reasons += noise_reasons(
            cpus=max(r.cpus for _, r in busy),
            other_cpus_busy=_weighted([(r.other_cpus_busy, r.duration_s) for _, r in busy]),
            other_cpus_busy_max=_highest([r.other_cpus_busy_max for _, r in busy]),
            steal_percent=None,
            during=_during([i for i, _ in busy], total),
        )
    if stolen:
        reasons += noise_reasons(
            cpus=0,
            other_cpus_busy=None,
            other_cpus_busy_max=None,
            steal_percent=_weighted([(r.steal_percent, r.duration_s) for _, r in stolen]),
            during=_during([i for i, _ in stolen], total),
        )
    # A run judged noisy on other grounds than these two keeps its own words.
    judged = {i for i, _ in busy} | {i for i, _ in stolen}
    reasons += [
        f"run {i}: {reason}" for i, r in numbered if i not in judged for reason in r.reasons
    ]
    return tuple(reasons)
