"""The suite's and the format comparison's entries measured in worker processes, interleaved.

Every entry runs in its own fresh worker process (:func:`pyinfer.profiling.repeat.run_worker`):
TensorFlow's and torch's thread pools and allocators, the parent's exports and other entries'
models never share the process that is timed. With N repetitions the entries alternate within
each round (run 1 of every entry, then run 2 of every entry, ...:
:func:`~pyinfer.profiling.repeat.run_interleaved`), so a drift of the machine hits them all
alike; each entry's runs are merged into one report
(:func:`~pyinfer.profiling.repeat.merge_reports`). The first run of an entry makes its memory
pass, throughput run and parity run; the later ones measure the latency only, with as many
calls as the first took.

An entry whose run fails is not run again (the others go on); Ctrl-C keeps every run finished.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pyinfer.errors import PyinferError
from pyinfer.profiling.jobs import WorkerJob, WorkerResult
from pyinfer.profiling.repeat import merge_reports, per_run_settings, run_interleaved
from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.report import LatencyMeasurement, ProfileReport, format_ms
from pyinfer.report.environment import Environment
from pyinfer.suite.settings import Progress

__all__ = ["EntryError", "Measured", "Subject", "measure_interleaved"]

logger = logging.getLogger(__name__)


class EntryError(PyinferError):
    """An entry stopped by its own check (its parity, say), with the reason for its row."""


class _NotRunError(PyinferError):
    """A later run of an entry whose earlier run failed: not started."""


@dataclass(frozen=True)
class Subject:
    """One entry to measure.

    Attributes:
        label: The entry in messages and in its workers' errors (``"ONNX (FP32)"``).
        heading: Its progress line (``"cpu ResNet50 ONNX (FP32)"``).
        job: The first run's job: the model to load or build, the entry's settings (with the
            repetitions wanted), and its memory, throughput and parity runs.
        same_calls: Whether the later runs make as many timed calls as the first (not for a
            batch sweep, whose sizes each take their own count).
        prepare_s: Seconds the parent spent preparing it (exporting its file).
    """

    label: str
    heading: str
    job: WorkerJob
    same_calls: bool = True
    prepare_s: float = 0.0


@dataclass
class Measured:
    """What the runs of one entry gave.

    Attributes:
        runs: The reports of its finished runs, in order.
        outputs: The first run's parity outputs, if asked.
        error: The failure that stopped it (a run's error, or :class:`EntryError`).
        elapsed_s: Seconds its runs took, their process starts included.
        started: Whether a run of it was started.
    """

    runs: list[ProfileReport] = field(default_factory=list)
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    elapsed_s: float = 0.0
    started: bool = False

    def report(self, settings: ProfilerSettings) -> ProfileReport | None:
        """The entry's report: its one run's, or its runs merged (``None`` if none finished)."""
        if not self.runs:
            return None
        if settings.repetitions == 1:
            return self.runs[0]
        first = self.runs[0].environment

        def environment(overlaps: Sequence[str]) -> Environment:
            return dataclasses.replace(first, concurrent_measurements=tuple(overlaps))

        return merge_reports(self.runs, settings, environment)


def _run_job(
    subject: Subject, index: int, count: int, first: LatencyMeasurement | None
) -> WorkerJob:
    """Run ``index`` (0-based) of ``count``: the first as given, later ones latency only.

    Later runs of an entry whose runs all time the same thing make as many timed calls as its
    first run (``first``) did, and a share of its warm-up calls; a batch sweep's sizes each
    take their own.
    """
    job = subject.job
    label = subject.label if count == 1 else f"{subject.label}, run {index + 1} of {count}"
    if index == 0:
        return dataclasses.replace(job, settings=per_run_settings(job.settings), label=label)
    calls = warmup = None
    if first is not None and subject.same_calls:
        calls, warmup = first.iterations, first.warmup_iterations
    return dataclasses.replace(
        job,
        settings=per_run_settings(job.settings, calls, warmup),
        memory=False,
        throughput=False,
        parity_inputs=None,
        label=label,
    )


def measure_interleaved(
    subjects: Sequence[Subject],
    repetitions: int,
    say: Progress,
    *,
    after_first: Callable[[int, WorkerResult], None] | None = None,
    on_finished: Callable[[int, Measured], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    start: float | None = None,
    worker: Callable[[WorkerJob], WorkerResult] | None = None,
) -> tuple[list[Measured], bool]:
    """Measures every subject in ``repetitions`` rounds of fresh worker processes.

    Args:
        subjects: The entries, in the order of each round.
        repetitions: Runs per entry.
        say: Gets a line as each run starts (``[2/5] cpu ResNet50 ONNX (FP32) (elapsed 12 s)``)
            and as it ends.
        after_first: Called with (subject index, result) after an entry's first run, to check
            what it returned (its parity outputs); raising :class:`EntryError` stops the entry.
        on_finished: Called with (subject index, what it gave) after an entry's last run, or
            the run that failed.
        clock: Seconds (a test may pass its own).
        start: When the whole run began on ``clock``, for the elapsed time in the progress
            lines (default: now).
        worker: Runs one job (default: a fresh worker process on this machine; see
            :func:`~pyinfer.profiling.repeat.run_interleaved`).

    Returns:
        Per subject, what its runs gave; and whether Ctrl-C (or SIGTERM) stopped the rounds
        (the runs finished before it are kept, the one running then is dropped).
    """
    measured = [Measured() for _ in subjects]
    began = clock() if start is None else start
    started_at = [0.0 for _ in subjects]
    count = len(subjects)

    def maker(s: int) -> Callable[[int], WorkerJob]:
        def make(r: int) -> WorkerJob:
            entry = measured[s]
            if entry.error is not None:
                raise _NotRunError(f"{subjects[s].label}: not run again after its failure")
            which = "" if repetitions == 1 else f", run {r + 1} of {repetitions}"
            say(f"[{s + 1}/{count}] {subjects[s].heading}{which} (elapsed {clock() - began:.0f} s)")
            entry.started = True
            started_at[s] = clock()
            first = entry.runs[0].latency if entry.runs else None
            return _run_job(subjects[s], r, repetitions, first)

        return make

    def on_result(s: int, r: int, outcome: WorkerResult | BaseException) -> None:
        entry = measured[s]
        if isinstance(outcome, _NotRunError):
            return
        entry.elapsed_s += clock() - started_at[s]
        if isinstance(outcome, BaseException):
            entry.error = outcome
            logger.warning("%s failed: %s", subjects[s].label, outcome)
        elif not isinstance(outcome.report, ProfileReport):  # pragma: no cover - asked for one
            entry.error = EntryError(f"{subjects[s].label}: the worker returned no report")
        else:
            _record(s, r, outcome, outcome.report)
        if on_finished is not None and (entry.error is not None or r == repetitions - 1):
            on_finished(s, entry)

    def _record(s: int, r: int, result: WorkerResult, report: ProfileReport) -> None:
        entry = measured[s]
        entry.runs.append(report)
        if r == 0:
            entry.outputs = dict(result.outputs) if result.outputs is not None else None
            if after_first is not None:
                try:
                    after_first(s, result)
                except EntryError as exc:
                    entry.error = exc
        if repetitions > 1:
            say(
                f"[{s + 1}/{count}] {subjects[s].label}, run {r + 1} of {repetitions}: median "
                f"{format_ms(report.latency.stats.median_ms)} ms ({clock() - started_at[s]:.1f} s)"
            )

    interrupted = False
    try:
        run_interleaved(
            [maker(s) for s in range(count)], repetitions, on_result=on_result, worker=worker
        )
    except KeyboardInterrupt:
        interrupted = True
    return measured, interrupted
