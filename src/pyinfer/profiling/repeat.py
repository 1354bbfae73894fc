"""Repetitions in fresh processes: start the workers one at a time, gather, merge.

Fresh processes of the same model can differ by tens of percent (memory layout, core placement,
the machine's other work) while each one's samples agree to within 1%: only measurements
repeated in new processes show the between-run variance that says whether the next run will
give the same number. pyperf's worker processes are the model.

* :func:`run_worker` runs one :class:`~pyinfer.profiling.jobs.WorkerJob` in a new Python
  process (:data:`~pyinfer.profiling.jobs.WORKER_COMMAND`), waits for it, and returns its
  result or raises its failure as the same pyinfer error type, naming the run.
* :func:`run_interleaved` runs the repetitions of several subjects alternately (A B A B ...),
  so that a drift of the machine hits all of them alike.
* :func:`profile_repeated` is :meth:`PerformanceProfiler.profile` with ``repetitions > 1``: the
  first run also makes the memory pass and the throughput run; the latency of every run is
  merged (:mod:`~pyinfer.profiling.merge`).

Workers run one at a time: two at once would share the cores they are timed on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pyinfer.backends.base import LoadRequest, Model
from pyinfer.errors import InferenceError, InvalidArgumentError, PyinferError
from pyinfer.profiling.jobs import WORKER_COMMAND, WorkerFailure, WorkerJob, WorkerResult
from pyinfer.profiling.merge import merge_curves, merge_latency
from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.report import BatchCurve, LatencyMeasurement, ProfileReport, SweepReport
from pyinfer.report.energy import combine_energy
from pyinfer.report.environment import Environment
from pyinfer.report.noise import combine_readings

__all__ = [
    "WORKER_GRACE_S",
    "load_request_of",
    "profile_interleaved",
    "profile_repeated",
    "run_interleaved",
    "run_worker",
    "sweep_repeated",
]

logger = logging.getLogger(__name__)

#: After Ctrl-C, how long a worker gets to write the runs it measured before it is killed.
WORKER_GRACE_S = 10.0


def load_request_of(model: Model) -> LoadRequest:
    """How a worker loads ``model`` again.

    Raises:
        InvalidArgumentError: If the model was not loaded from a file by pyinfer's loaders (a
            model built in memory cannot be loaded in another process).
    """
    if model.load_request is None:
        raise InvalidArgumentError(
            f"model '{model.name}' was not loaded from a file with pyinfer.load_model, so a "
            "fresh process cannot load it again; repetitions > 1 need a model file (or use "
            "repetitions=1 to measure it in this process)"
        )
    return model.load_request


def _child_environment() -> dict[str, str]:
    """The worker's environment: ours, with this pyinfer first on the import path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the pyinfer package
    paths = [root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _rebuild(failure: WorkerFailure, label: str) -> BaseException:
    """The worker's exception as the parent raises it: the same pyinfer type where it is one."""
    message = f"{label}: {failure.message}"
    try:
        cls = getattr(importlib.import_module(failure.module), failure.name)
    except (ImportError, AttributeError):
        cls = None
    if isinstance(cls, type) and issubclass(cls, PyinferError):
        try:
            return cls(message)
        except TypeError:  # pragma: no cover - every pyinfer error takes a message first
            pass
    return InferenceError(
        f"{label} failed in its worker process: {failure.name}: {failure.message}"
    )


def _relay(process: subprocess.Popen[bytes], label: str, lines: list[str]) -> None:
    """Relays the worker's output into this process's log as it comes, and keeps its lines.

    A worker logs ``LEVEL logger: message`` at the level this process logs at (its progress
    shows under ``--verbose`` while it runs); such a line is logged here as ``label: message``
    at its level, other output (a framework's) at debug level.
    """
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if not line.strip():
            continue
        lines.append(line)
        level_name, _, rest = line.partition(" ")
        level = logging.getLevelName(level_name)
        if isinstance(level, int) and rest:
            logger.log(level, "%s: %s", label, rest.partition(": ")[2] or rest)
        else:
            logger.debug("%s: %s", label, line)


def _finish_relay(process: subprocess.Popen[bytes], relay: threading.Thread) -> None:
    """Waits for the relay to reach the end of the worker's output, then closes the pipe."""
    relay.join(timeout=WORKER_GRACE_S)
    if process.stdout is not None and not relay.is_alive():
        process.stdout.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """After Ctrl-C: the worker got SIGINT too (or gets it now); it writes what it measured."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=WORKER_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_worker(job: WorkerJob, folder: Path | None = None) -> WorkerResult:
    """Runs ``job`` in a new Python process and returns what it measured.

    Args:
        job: What to load and measure.
        folder: Where the job and result files go (default: a new private temporary folder).

    Returns:
        The worker's result (on Ctrl-C, an interrupted one is attached to the
        ``KeyboardInterrupt`` as ``worker_result``).

    Raises:
        PyinferError: The worker's own error, of the same type, its message prefixed with the
            job's label (a model that fails to load, an out-of-memory...).
        InferenceError: If the worker died without a result (a crash in native code: the exit
            status and the end of its output are in the message).
        KeyboardInterrupt: On Ctrl-C, after the worker wrote what it had measured.
    """
    # The worker logs what this process would show: its progress too under --verbose.
    level = min(logging.WARNING, logging.getLogger("pyinfer").getEffectiveLevel())
    job = dataclasses.replace(job, log_level=level)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyinfer-run-")))
        job_path, result_path = folder / "job.pickle", folder / "result.pickle"
        with job_path.open("wb") as handle:
            try:
                pickle.dump(job, handle, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise InvalidArgumentError(
                    f"{job.label}: the model's load options cannot be passed to a worker "
                    f"process ({exc}); use repetitions=1"
                ) from exc
        result_path.unlink(missing_ok=True)
        command = [sys.executable, *WORKER_COMMAND, str(job_path), str(result_path)]
        logger.debug("%s: %s", job.label, " ".join(command))
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
        )
        lines: list[str] = []
        relay = threading.Thread(
            target=_relay, args=(process, job.label, lines), name="pyinfer-worker-log", daemon=True
        )
        relay.start()
        try:
            status = process.wait()
        except KeyboardInterrupt as exc:
            _stop(process)
            _finish_relay(process, relay)
            if result_path.exists():
                exc.worker_result = _read(result_path)  # type: ignore[attr-defined]
            raise
        _finish_relay(process, relay)
        output = "\n".join(lines)
        if not result_path.exists():
            how = (
                f"was killed by signal {signal.Signals(-status).name}"
                if status < 0 and -status in signal.valid_signals()
                else f"exited with status {status}"
            )
            tail = " | ".join(line for line in output.strip().splitlines()[-5:]) or "no output"
            raise InferenceError(f"{job.label}: the worker process {how} without a result ({tail})")
        result = _read(result_path)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.failure is not None:
        logger.debug("%s failed in its worker:\n%s", job.label, result.failure.traceback)
        raise _rebuild(result.failure, job.label)
    return result


def _read(path: Path) -> WorkerResult:
    with path.open("rb") as handle:
        result = pickle.load(handle)  # written by our own worker, in our folder
    if not isinstance(result, WorkerResult):
        raise InferenceError(f"{path} does not hold a worker result")
    return result


def run_interleaved(
    subjects: Sequence[Callable[[int], WorkerJob]],
    repetitions: int,
    *,
    on_result: Callable[[int, int, WorkerResult | BaseException], None] | None = None,
    worker: Callable[[WorkerJob], WorkerResult] | None = None,
) -> list[list[WorkerResult | BaseException]]:
    """Runs ``repetitions`` of each subject, alternating: A1 B1 C1 A2 B2 C2 ...

    Args:
        subjects: For each subject, the job of its repetition ``r`` (0-based).
        repetitions: Runs per subject.
        on_result: Called after each run with (subject, repetition, result or failure).
        worker: Runs one job and returns its result, raising its failure as a pyinfer error
            (default :func:`run_worker`, a fresh process on this machine; a Ray task on a
            cluster's node, :mod:`pyinfer.cluster.matrix`).

    Returns:
        Per subject, its runs' results in order; a run that failed holds its exception (the
        others go on: one format failing does not stop the rest).

    Raises:
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` the results so far (same shape,
            shorter lists).
    """
    results: list[list[WorkerResult | BaseException]] = [[] for _ in subjects]
    run = worker or run_worker
    try:
        for r in range(repetitions):
            for s, make in enumerate(subjects):
                try:
                    outcome: WorkerResult | BaseException = run(make(r))
                except PyinferError as exc:
                    outcome = exc
                results[s].append(outcome)
                if on_result is not None:
                    on_result(s, r, outcome)
    except KeyboardInterrupt as exc:
        exc.partial_result = results  # type: ignore[attr-defined]
        raise
    return results


def per_run_settings(
    settings: ProfilerSettings, calls: int | None = None, warmup: int | None = None
) -> ProfilerSettings:
    """The settings a worker measures one run with.

    Args:
        settings: The settings of the repeated measurement.
        calls: The timed calls every run after the first makes: as many as the first run's
            stopping rule took, so each run weighs the same in the pooled statistics (a run in
            a faster mode would otherwise take more calls in its minimum time and pull the
            median towards itself). ``None``: the first run, which stops as soon as its
            minimum count and minimum time are both reached.
        warmup: The warm-up calls the first run made (its fixed count and its settling):
            every later run makes its share of them, ``ceil(warmup / repetitions)``, and at
            least the settings' own count, without settling again (``None``: the first run,
            which warms up as the settings say). The first calls of a fresh process are the
            slow ones, and they last 2 to 5 calls here (first inference, allocator, the
            TorchScript executor's profiling calls; ONNX Runtime ResNet50 and MobileNetV2,
            TorchScript MobileNetV2); settling again on a busy machine only waits out the noise,
            which took 10 to 95 ResNet50 calls a run, at random, several times the measurement.
    """
    # With repetitions a run stops at its minimums: the calls of all runs together must pin
    # the median (merge.merge_latency), and more calls in one process do not tell what the
    # next process will give. A single run (an isolated entry) keeps its stopping rule.
    target = math.inf if settings.repetitions > 1 else settings.stability_target
    each = dataclasses.replace(settings, repetitions=1, stability_target=target)
    if warmup is not None:
        share = max(settings.warmup_iterations, math.ceil(warmup / settings.repetitions))
        each = dataclasses.replace(each, warmup_iterations=share, warmup_until_settled=False)
    if calls is None:
        return each
    return dataclasses.replace(each, min_iterations=calls, max_iterations=calls, min_time_s=0.0)


def _later_run(settings: ProfilerSettings, first: LatencyMeasurement | None) -> ProfilerSettings:
    """A run's settings: the first run's as given, later ones with its calls and warm-up share."""
    if first is None:
        return per_run_settings(settings)
    return per_run_settings(settings, first.iterations, first.warmup_iterations)


def _report(result: WorkerResult) -> ProfileReport:
    report = result.report
    if not isinstance(report, ProfileReport):  # pragma: no cover - the job asked for a profile
        raise InferenceError("a worker returned no profile report")
    return report


@contextlib.contextmanager
def _keeping_partial(
    done: list[ProfileReport], finish: Callable[[list[ProfileReport]], ProfileReport]
) -> Iterator[None]:
    """On Ctrl-C, attaches the report of the runs finished (and the interrupted one's part)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "worker_result", None)
        runs = list(done)
        if isinstance(partial, WorkerResult) and isinstance(partial.report, ProfileReport):
            runs.append(partial.report)
        exc.partial_result = finish(runs) if runs else None  # type: ignore[attr-defined]
        raise


def profile_repeated(
    model: Model,
    settings: ProfilerSettings,
    *,
    batch_size: int,
    batch_sizes: Sequence[int],
    latency_budget_ms: float | None,
    memory: bool,
    throughput: bool,
    environment: Callable[[Sequence[str]], Environment],
) -> ProfileReport:
    """:meth:`PerformanceProfiler.profile` repeated in ``settings.repetitions`` fresh processes.

    Run 1 makes the memory pass (on a model that has not run yet, in a process that has done
    nothing else), the cold start, the throughput run and the sweep's first run; every run
    measures the latency (and the sweep). The report's latency pools every run's samples; its
    ``repetitions`` holds the runs and the between-run figures.

    Args:
        model: The model, loaded from a file (its :attr:`~Model.load_request` is reused).
        settings: The settings of each run; ``repetitions`` runs are made.
        batch_size: Items per call.
        batch_sizes: Batch sizes to sweep in each run (empty: none).
        latency_budget_ms: The sweep's budget.
        memory: Whether run 1 makes the memory pass.
        throughput: Whether run 1 makes a throughput run.
        environment: Records the environment now, given the overlapping measurements the
            workers saw.

    Returns:
        The merged report.

    Raises:
        InvalidArgumentError: If the model cannot be loaded in another process.
        PyinferError: A run's failure, of its own type, naming the run.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` the report of the runs made
            (``None`` when none was).
    """
    request = load_request_of(model)
    count = settings.repetitions
    first: list[LatencyMeasurement] = []  # the first run's latency, once it is made

    def job(index: int) -> WorkerJob:
        return WorkerJob(
            load=request,
            settings=_later_run(settings, first[0] if first else None),
            task="profile",
            batch_size=batch_size,
            batch_sizes=tuple(batch_sizes),
            latency_budget_ms=latency_budget_ms,
            memory=memory and index == 0,
            throughput=throughput and index == 0,
            cpus=settings.cpus,
            label=f"run {index + 1} of {count}",
        )

    def finish(runs: list[ProfileReport]) -> ProfileReport:
        return merge_reports(runs, settings, environment)

    done: list[ProfileReport] = []
    with _keeping_partial(done, finish):
        for index in range(count):
            logger.info("run %d of %d in a fresh process", index + 1, count)
            done.append(_report(run_worker(job(index))))
            first[:] = [done[0].latency]
    return finish(done)


def profile_interleaved(
    models: Sequence[Model],
    settings: ProfilerSettings,
    *,
    batch_size: int | None = None,
    memory: bool = False,
    throughput: bool = False,
    environment: Callable[[Sequence[str]], Environment],
) -> list[ProfileReport]:
    """Profiles several models in fresh processes, alternating their runs: A1 B1 A2 B2 ...

    What a drift of the machine (another job starting, a frequency change) does to one model's
    runs it does to the others' too, so their ratio holds where two separate measurements
    would not. Each model gets ``settings.repetitions`` runs (at least one); its first run also
    makes the memory pass and throughput run when asked; the runs after a model's first make as
    many timed calls as that first did.

    Args:
        models: The models, each loaded from a file.
        settings: The settings of each run.
        batch_size: Items per call (default: the settings' batch size, else 1).
        memory: Whether each model's first run makes the memory pass.
        throughput: Whether each model's first run makes a throughput run.
        environment: Records the environment, given the overlapping measurements seen.

    Returns:
        One merged report per model, in order.

    Raises:
        InvalidArgumentError: If a model cannot be loaded in another process.
        PyinferError: A run's failure, of its own type, naming the model and the run.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` the reports of the models that
            have at least one run (``None`` for the others).
    """
    requests = [load_request_of(m) for m in models]
    count = settings.repetitions
    batch = batch_size or settings.batch_size or 1
    first: dict[int, LatencyMeasurement] = {}

    def subject(which: int) -> Callable[[int], WorkerJob]:
        def job(index: int) -> WorkerJob:
            return WorkerJob(
                load=requests[which],
                settings=_later_run(settings, first.get(which)),
                batch_size=batch,
                memory=memory and index == 0,
                throughput=throughput and index == 0,
                cpus=settings.cpus,
                label=f"{requests[which].name}: run {index + 1} of {count}",
            )

        return job

    def finish(results: list[list[WorkerResult | BaseException]]) -> list[ProfileReport | None]:
        merged: list[ProfileReport | None] = []
        for runs in results:
            done = [_report(r) for r in runs if isinstance(r, WorkerResult)]
            merged.append(merge_reports(done, settings, environment) if done else None)
        return merged

    def on_result(which: int, index: int, outcome: WorkerResult | BaseException) -> None:
        if isinstance(outcome, BaseException):
            raise outcome
        if index == 0 and isinstance(outcome.report, ProfileReport):
            first[which] = outcome.report.latency

    try:
        results = run_interleaved(
            [subject(i) for i in range(len(models))], count, on_result=on_result
        )
    except KeyboardInterrupt as exc:
        exc.partial_result = finish(getattr(exc, "partial_result", []))  # type: ignore[attr-defined]
        raise
    return [r for r in finish(results) if r is not None]


def sweep_repeated(
    model: Model,
    settings: ProfilerSettings,
    batch_sizes: Sequence[int],
    latency_budget_ms: float | None,
) -> BatchCurve:
    """:meth:`PerformanceProfiler.sweep_batch_sizes` repeated in fresh processes.

    Each run sweeps every batch size (the sizes alternate within a run, and runs alternate in
    time, so a drift hits every size alike); the merged curve holds, per batch size, the
    medians of the runs' figures and each run's median.

    Raises:
        InvalidArgumentError: If the model cannot be loaded in another process.
        PyinferError: A run's failure, of its own type, naming the run.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` the curve of the runs made.
    """
    request = load_request_of(model)
    count = settings.repetitions
    each = per_run_settings(settings)
    curves: list[BatchCurve] = []
    try:
        for index in range(count):
            logger.info("sweep run %d of %d in a fresh process", index + 1, count)
            result = run_worker(
                WorkerJob(
                    load=request,
                    settings=each,
                    task="sweep",
                    batch_sizes=tuple(batch_sizes),
                    latency_budget_ms=latency_budget_ms,
                    cpus=settings.cpus,
                    label=f"sweep run {index + 1} of {count}",
                )
            )
            if not isinstance(result.report, SweepReport):  # pragma: no cover - asked for one
                raise InferenceError("a sweep worker returned no sweep report")
            curves.append(result.report.batch_curve)
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "worker_result", None)
        if isinstance(partial, WorkerResult) and isinstance(partial.report, SweepReport):
            curves.append(partial.report.batch_curve)
        exc.partial_result = (  # type: ignore[attr-defined]
            merge_curves(curves, settings.reproducibility_target) if curves else None
        )
        raise
    return merge_curves(curves, settings.reproducibility_target)


def merge_reports(
    runs: Sequence[ProfileReport],
    settings: ProfilerSettings,
    environment: Callable[[Sequence[str]], Environment],
) -> ProfileReport:
    """One report of several runs: the first's passes, every run's latency and sweep.

    The throughput figures are the first run's. Its energy reading, where several runs made a
    throughput run, is theirs combined (:func:`~pyinfer.report.energy.combine_energy`: joules,
    seconds and inferences summed, so joules per inference and watts are over all of them).

    Args:
        runs: The runs' reports, the first with the memory pass and throughput run.
        settings: The measurement's settings (its stability and reproducibility targets).
        environment: Records the environment, given the overlapping measurements seen.
    """
    first = runs[0]
    latency, reps = merge_latency([r.latency for r in runs], settings)
    curves = [r.batch_curve for r in runs if r.batch_curve is not None]
    overlaps = list(
        dict.fromkeys(line for r in runs for line in r.environment.concurrent_measurements)
    )
    throughputs = [r.throughput for r in runs if r.throughput is not None]
    throughput = first.throughput
    if throughput is not None and len(throughputs) > 1:
        energy = combine_energy([t.energy for t in throughputs])
        throughput = dataclasses.replace(throughput, energy=energy)
    return dataclasses.replace(
        first,
        latency=latency,
        throughput=throughput,
        batch_curve=merge_curves(curves, settings.reproducibility_target) if curves else None,
        repetitions=reps,
        noise=combine_readings([r.noise for r in runs]),
        environment=environment(overlaps),
    )
