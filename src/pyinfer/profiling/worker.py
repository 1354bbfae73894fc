"""One measurement in a fresh process: the worker that repetitions and isolated entries run.

A worker is a new Python process running :func:`main` with the arguments ``JOB RESULT`` (see
:data:`~pyinfer.profiling.jobs.WORKER_COMMAND`): it reads a pickled
:class:`WorkerJob` from the file ``JOB``, pins itself to the job's CPUs, loads the model anew
(``load_model`` with the request the parent's model was loaded with), optionally runs it once on
given inputs (for the parent's parity check), measures it with :class:`PerformanceProfiler` and
writes a pickled :class:`WorkerResult` to ``RESULT``. The parent (:mod:`~pyinfer.profiling.repeat`)
starts it, waits for it, and reads the result; the files are the parent's own, in a private
temporary folder, so unpickling them trusts nothing it did not write.

Nothing a model does in a worker (a thread pool, an allocator's caches, a framework's global
state) outlives the measurement, and nothing of the parent's (other frameworks imported, other
models loaded) is in the process that is timed.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from pyinfer.backends.base import Model
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling.jobs import WorkerFailure, WorkerJob, WorkerResult
from pyinfer.report import ProfileReport, SweepReport

__all__ = ["main", "run_job"]

logger = logging.getLogger(__name__)


def _pin(cpus: Sequence[int]) -> tuple[int, ...]:
    """Pins this process to ``cpus`` (when given); returns the CPUs it may run on."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return ()  # pragma: no cover - not Linux


def _model(job: WorkerJob) -> Model:
    """The job's model: built by its function, or loaded as its request says."""
    from pyinfer.loading import load_model

    if job.build is not None:
        return job.build()
    request = job.load
    if request is None:
        raise InvalidArgumentError("the job names no model (no load, no build)")
    return load_model(
        request.path,
        request.format,
        request.device,
        name=request.name,
        quiet_native_logs=True,
        **request.options,
    )


def run_job(job: WorkerJob) -> WorkerResult:
    """Loads the model and measures it as ``job`` says, in this process.

    The worker's ``main`` calls it; tests call it directly. Exceptions are returned as a
    :class:`WorkerFailure`, Ctrl-C as an interrupted result with the partial report.
    """
    from pyinfer.profiling.profiler import PerformanceProfiler, sweep_report

    pid = os.getpid()
    cpus: tuple[int, ...] = ()
    profiler: PerformanceProfiler | None = None
    try:
        cpus = _pin(job.cpus)
        model = _model(job)
        try:
            outputs = None
            if job.parity_inputs is not None:
                outputs = model(list(job.parity_inputs))
            profiler = PerformanceProfiler(model, job.settings)
            report: ProfileReport | SweepReport
            if job.task == "sweep":
                curve = profiler.sweep_batch_sizes(job.batch_sizes, job.latency_budget_ms)
                report = sweep_report(profiler, curve)
            else:
                report = profiler.profile(
                    job.batch_size,
                    batch_sizes=job.batch_sizes or None,
                    latency_budget_ms=job.latency_budget_ms,
                    memory=job.memory,
                    throughput=job.throughput,
                )
        finally:
            model.close()
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_result", None)
        if job.task == "sweep" and partial is not None and profiler is not None:
            partial = sweep_report(profiler, partial, interrupted=True)
        kept = partial if isinstance(partial, (ProfileReport, SweepReport)) else None
        return WorkerResult(report=kept, interrupted=True, pid=pid, cpus=cpus)
    except BaseException as exc:  # everything goes back to the parent, typed
        failure = WorkerFailure(
            module=type(exc).__module__,
            name=type(exc).__qualname__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
        return WorkerResult(failure=failure, pid=pid, cpus=cpus)
    return WorkerResult(report=report, outputs=outputs, pid=pid, cpus=cpus)


def _write(result: WorkerResult, path: Path) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """The worker process's entry, given ``JOB RESULT`` (see :data:`.jobs.WORKER_COMMAND`).

    Returns:
        0 when a result was written (a failure inside the job is a result too), 2 on bad
        arguments.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: pyinfer worker JOB RESULT (started by pyinfer itself)\n")
        return 2
    # Ctrl-C is how the parent stops a worker that has measured enough: a worker started from
    # a background job inherits SIGINT ignored, so Python's handler is put back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    job_path, result_path = Path(args[0]), Path(args[1])
    with job_path.open("rb") as handle:
        job = pickle.load(handle)  # the parent's own file, in its private folder
    if not isinstance(job, WorkerJob):
        sys.stderr.write(f"{job_path} does not hold a pyinfer worker job\n")
        return 2
    logging.basicConfig(
        level=job.log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    _write(run_job(job), result_path)
    return 0
