"""What a worker process is asked and what it answers: the job, the result, the command.

The parent (:mod:`~pyinfer.profiling.repeat`) writes a :class:`WorkerJob`, starts
:data:`WORKER_COMMAND` and reads back a :class:`WorkerResult`; the worker
(:mod:`~pyinfer.profiling.worker`) does the opposite. These records are apart from both so that
the parent never imports the worker's side (which imports the profiler, which starts parents).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pyinfer.backends.base import LoadRequest, Model
from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.report import ProfileReport, SweepReport

__all__ = ["TASKS", "WORKER_COMMAND", "WorkerFailure", "WorkerJob", "WorkerResult"]


#: The worker's command after the interpreter; the job and result files follow. ``-c`` rather
#: than ``-m``: run as ``__main__``, this module's classes would not be those the parent pickled.
WORKER_COMMAND = (
    "-c",
    "import sys; from pyinfer.profiling.worker import main; sys.exit(main(sys.argv[1:]))",
)

#: What a worker measures: ``"profile"`` (:meth:`PerformanceProfiler.profile`) or
#: ``"sweep"`` (:meth:`PerformanceProfiler.sweep_batch_sizes`, as a sweep report).
TASKS = ("profile", "sweep")


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process does.

    Attributes:
        load: How to load the model (or ``build``).
        settings: How to measure (one run: the worker ignores ``repetitions``).
        task: One of :data:`TASKS`.
        batch_size: Items per call for ``profile``.
        batch_sizes: The sweep's batch sizes (``sweep``, or ``profile`` with a sweep).
        latency_budget_ms: The sweep's budget for its best batch.
        memory: Whether ``profile`` makes its memory pass.
        throughput: Whether ``profile`` makes a throughput run.
        cpus: Logical CPUs to pin the worker to (empty: no pinning).
        parity_inputs: Inputs to run once before measuring, by position in the model's input
            order (an exported model may rename its inputs); their outputs come back in the
            result (``None``: no such run).
        label: The job in messages (``"run 2 of 5"``).
        build: Instead of ``load``, a function that makes the model in the worker (it must be
            picklable: a module-level function, or a ``functools.partial`` of one, so the
            worker imports it by name); for models made in code, such as a torchvision network
            with seeded random weights.
        log_level: The level the worker logs at (to its output, which the parent relays).
    """

    load: LoadRequest | None
    settings: ProfilerSettings
    task: str = "profile"
    batch_size: int | None = None
    batch_sizes: tuple[int, ...] = ()
    latency_budget_ms: float | None = None
    memory: bool = True
    throughput: bool = True
    cpus: tuple[int, ...] = ()
    parity_inputs: tuple[np.ndarray, ...] | None = None
    label: str = "worker"
    build: Callable[[], Model] | None = None
    log_level: int = logging.WARNING


@dataclass(frozen=True)
class WorkerFailure:
    """An exception raised in a worker, as the parent rebuilds it.

    Attributes:
        module: The exception class's module.
        name: The class's name.
        message: ``str(exception)``.
        traceback: The worker's traceback, for the log.
    """

    module: str
    name: str
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class WorkerResult:
    """What a worker wrote back.

    Attributes:
        report: The profile or sweep report (on Ctrl-C: the partial one, if any).
        outputs: The outputs of the parity run, if asked.
        failure: The exception that ended the worker, if any.
        interrupted: Whether Ctrl-C (or SIGTERM) ended it.
        pid: The worker's process id.
        cpus: The CPUs it ran on.
    """

    report: ProfileReport | SweepReport | None = None
    outputs: dict[str, np.ndarray] | None = None
    failure: WorkerFailure | None = None
    interrupted: bool = False
    pid: int = 0
    cpus: tuple[int, ...] = field(default_factory=tuple)
