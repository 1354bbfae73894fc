"""A plain Python callable as something the profiler measures: the adapter and its failures.

:class:`CallableModel` wraps ``fn`` with the arguments to call it with and answers the
:class:`~pyinfer.Model` hooks the profiler calls, so a callable gets the same measurement path
as a model: the first call timed as cold start, the warm-up, the stopping rule, the core's timed
loop, the statistics and the report. What a model has and a callable has not is left out
rather than made up: no inputs are made (the callable is called with the arguments given), no
model is loaded (the cold start has no load time), there are no parameters, and a batch sweep is
refused. The timed call is ``functools.partial(fn, *args, **kwargs)`` itself, so no frame of the
adapter's is timed (:meth:`CallableModel.prepared_call`).

The report names the callable by its qualified name (``module.Class.method``), its format and
framework are ``python`` and it runs on the CPU (code that queues work on a GPU and returns
before it finishes is timed as far as the host sees it).

Repetitions (:func:`profile_runs`) run in fresh worker processes, as a model's do, when the
callable and its arguments can be loaded there: they pickle, and by reference to an importable
module (a function of a module, a builtin, a ``functools.partial`` of one, arrays as
arguments). A closure, a lambda, or anything of the ``__main__`` script cannot be loaded again in
another process: its runs are made one after the other in this process, and the report says so.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import pickle
import pickletools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from pyinfer.backends.base import Model, ModelFormat, parse_device
from pyinfer.errors import InferenceError, InvalidArgumentError, PyinferError
from pyinfer.profiling import repeat
from pyinfer.profiling.inputs import PreparedCall
from pyinfer.profiling.jobs import WorkerJob, WorkerResult
from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.report import ProfileReport
from pyinfer.report.environment import Environment

__all__ = [
    "CALLABLE_FORMAT",
    "IN_PROCESS_RUNS",
    "CallableFormat",
    "CallableModel",
    "as_failure",
    "load_in_worker",
    "process_loader",
    "profile_runs",
    "qualified_name",
]

logger = logging.getLogger(__name__)

#: What a repeated measurement of a callable that cannot be loaded in a fresh process says about
#: its runs: they are made one after the other in this process, so they show the variation
#: between runs of one process, not between processes (which is larger: memory layout and core
#: placement change with the process).
IN_PROCESS_RUNS = (
    "runs in one process: this callable cannot be loaded again in a fresh one (a closure, a "
    "lambda, code of __main__, or fresh processes turned off), so the spread between processes "
    "is not included"
)


class CallableFormat(str, enum.Enum):
    """The report's ``format`` of a callable: it is code, not a model file."""

    PYTHON = "python"


#: The format a :class:`CallableModel` reports (``"python"``); only its ``value`` is read.
CALLABLE_FORMAT = CallableFormat.PYTHON


def qualified_name(fn: Callable[..., object]) -> str:
    """``module.qualname`` of ``fn`` (a partial: of the function it wraps), for reports.

    Args:
        fn: Any callable: a function, a method, a ``functools.partial``, an object with
            ``__call__``.

    Returns:
        ``"json.dumps"``, ``"mymodule.Preprocess.__call__"``, ``"test_x.<locals>.work"``...
    """
    inner: Any = fn
    while isinstance(inner, functools.partial):
        inner = inner.func
    qualname: object = getattr(inner, "__qualname__", None)
    module: object = getattr(inner, "__module__", None)
    if not isinstance(qualname, str):  # an instance with __call__: name its class's method
        cls = type(inner)
        qualname, module = f"{cls.__qualname__}.__call__", cls.__module__
    if not isinstance(module, str) or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


def _shape_of(value: object) -> tuple[int, ...] | None:
    """The shape of an array-like argument (numpy, torch, TensorFlow), else ``None``."""
    shape = getattr(value, "shape", None)
    if shape is None or isinstance(shape, str):
        return None
    try:
        return tuple(int(d) for d in shape)
    except (TypeError, ValueError):  # an unknown dimension (None)
        return None


class CallableModel(Model):
    """A Python callable and its arguments, measured by the profiler as a model is.

    Example:
        >>> model = CallableModel(np.sort, (np.random.default_rng(0).random(10_000),))
        >>> PerformanceProfiler(model).profile(memory=False, throughput=False)

    Attributes:
        function: The callable.
        args: The positional arguments of each call.
        kwargs: The keyword arguments of each call.
        fresh_processes: Whether repetitions may run in fresh processes (see
            :func:`process_loader`).
    """

    def __init__(
        self,
        function: Callable[..., object],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        fresh_processes: bool = True,
    ) -> None:
        """Wraps a callable.

        Args:
            function: What to time.
            args: Positional arguments for each call.
            kwargs: Keyword arguments for each call.
            name: The name in reports (default: the callable's qualified name).
            fresh_processes: Whether repetitions may run in fresh processes when the callable
                can be loaded there (``False``: always in this process).

        Raises:
            InvalidArgumentError: If ``function`` is not callable, or ``name`` is empty.
        """
        if not callable(function):
            raise InvalidArgumentError(
                f"pyinfer times a callable (a function, a method, a functools.partial...), not "
                f"{type(function).__name__} {_short_repr(function)}"
            )
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidArgumentError(f"name must be a non-empty string, got {name!r}")
        self.function = function
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.fresh_processes = bool(fresh_processes)
        label = qualified_name(function)
        super().__init__(
            name=name or label,
            # The report reads only the value; a callable has no entry in the format registry.
            format=cast(ModelFormat, CALLABLE_FORMAT),
            framework="python",
            device=parse_device("cpu"),
            path=None,
            inputs=(),
            outputs=(),
            parameter_count=0,
            parameter_bytes=0,
            options={"callable": label, "args": len(self.args), "kwargs": sorted(self.kwargs)},
        )

    def prepared_call(self) -> PreparedCall:
        """The call to time: ``partial(fn, *args, **kwargs)``, with the arguments' shapes.

        Array arguments (anything with an integer ``shape``) are listed as inputs
        ``arg0``, ``arg1``... and by keyword, so the report's Input Shape line shows them.
        """
        named = {f"arg{i}": v for i, v in enumerate(self.args)} | self.kwargs
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, str] = {}
        for key, value in named.items():
            shape = _shape_of(value)
            if shape is None:
                continue
            shapes[key] = shape
            dtype = getattr(value, "dtype", None)
            if dtype is not None:
                dtypes[key] = getattr(dtype, "name", str(dtype)).removeprefix("torch.")
        call: Callable[[], object]
        if self.args or self.kwargs:
            call = functools.partial(self.function, *self.args, **self.kwargs)
        else:
            call = self.function
        return PreparedCall(batch_size=1, shapes=shapes, dtypes=dtypes, native={}, call=call)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Calls the callable once (``inputs`` is ignored); returns no outputs."""
        self.function(*self.args, **self.kwargs)
        return {}

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Nothing to convert: the callable takes the arguments it was given."""
        return {}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """A callable's result is not kept: no outputs."""
        return {}

    def __repr__(self) -> str:
        return f"<CallableModel {self.name!r}: {len(self.args)} args, {len(self.kwargs)} kwargs>"


def as_failure(model: CallableModel, exc: Exception, *, first_call: bool) -> PyinferError:
    """The typed error for a callable that raised while it was measured.

    Args:
        model: The callable measured.
        exc: What it raised (chained by the caller with ``raise ... from exc``).
        first_call: Whether it raised on its very first call.

    Returns:
        ``exc`` itself when it is a pyinfer error already, else an :class:`InferenceError`
        naming the callable, when it raised, and Python's own exception.
    """
    if isinstance(exc, PyinferError):
        return exc
    when = "on its first call" if first_call else "while it was timed"
    return InferenceError(
        f"callable '{model.name}' raised {when}: {type(exc).__name__}: {exc}; pyinfer times "
        "code that runs without error with the arguments given"
    )


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names_main(payload: bytes) -> bool:
    """Whether a pickle refers to ``__main__`` (which another process's ``__main__`` is not)."""
    return any(
        isinstance(arg, str) and (arg == "__main__" or arg.startswith("__main__ "))
        for _, arg, _ in pickletools.genops(payload)
    )


def process_loader(model: CallableModel) -> Callable[[], Model] | None:
    """How a fresh process makes ``model`` again, or ``None`` when it cannot.

    The callable, its arguments and its name are pickled here; a worker process unpickles them
    (:func:`load_in_worker`), importing the callable's module by name with this process's
    import path. ``None`` when ``model.fresh_processes`` is off, when they do not pickle (a
    closure, a lambda, a local class), or when they refer to ``__main__``.
    """
    if not model.fresh_processes:
        return None
    try:
        payload = pickle.dumps(
            (model.function, model.args, model.kwargs, model.name),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        logger.info("'%s' cannot be loaded in a fresh process (%s)", model.name, exc)
        return None
    if _names_main(payload):
        logger.info("'%s' refers to __main__: it cannot be loaded in a fresh process", model.name)
        return None
    paths = tuple(p for p in sys.path if isinstance(p, str))
    return functools.partial(load_in_worker, payload, paths)


def load_in_worker(payload: bytes, paths: Sequence[str]) -> CallableModel:
    """The worker's side of :func:`process_loader`: the callable model, made again.

    Args:
        payload: The pickled callable, arguments and name, written by the parent process.
        paths: The parent's import path; entries this process lacks are appended.
    """
    sys.path.extend(p for p in paths if p not in sys.path)
    function, args, kwargs, name = pickle.loads(payload)  # the parent's own, as the job is
    return CallableModel(function, args, kwargs, name=name, fresh_processes=False)


def profile_runs(
    model: CallableModel,
    settings: ProfilerSettings,
    *,
    run_here: Callable[[ProfilerSettings, bool], ProfileReport],
    memory: bool,
    throughput: bool,
    environment: Callable[[Sequence[str]], Environment],
) -> ProfileReport:
    """A callable's profile with ``settings.repetitions`` runs, merged as a model's are.

    The runs are made in fresh worker processes when :func:`process_loader` can load the
    callable there, else one after the other in this process (the report's between-run method
    then ends with :data:`IN_PROCESS_RUNS`). As for a model
    (:func:`~pyinfer.profiling.repeat.profile_repeated`), the first run makes the memory pass and
    the throughput run, and each later run as many timed calls as the first.

    Args:
        model: The callable.
        settings: The settings of the repeated measurement.
        run_here: Measures one run in this process, given its settings and whether it is the
            first.
        memory: Whether the first run makes the memory pass.
        throughput: Whether the first run makes a throughput run.
        environment: Records the environment, given the overlapping measurements seen.

    Returns:
        The merged report.

    Raises:
        PyinferError: A run's failure (from a worker: of its own type, naming the run).
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` the report of the runs made, the
            interrupted one's part included (``None`` when there is none).
    """
    build = process_loader(model)
    count = settings.repetitions
    runs: list[ProfileReport] = []
    where = "in this process" if build is None else "in a fresh process"

    def merged() -> ProfileReport:
        report = repeat.merge_reports(runs, settings, environment)
        reps = report.repetitions
        if build is not None or reps is None:
            return report
        method = f"{reps.method}; {IN_PROCESS_RUNS}" if reps.method else IN_PROCESS_RUNS
        return dataclasses.replace(
            report, repetitions=dataclasses.replace(reps, method=method, in_one_process=True)
        )

    def one_run(index: int, each: ProfilerSettings) -> ProfileReport:
        if build is None:
            return run_here(each, index == 0)
        result = repeat.run_worker(
            WorkerJob(
                load=None,
                build=build,
                settings=each,
                batch_size=1,
                memory=memory and index == 0,
                throughput=throughput and index == 0,
                cpus=settings.cpus,
                label=f"'{model.name}': run {index + 1} of {count}",
            )
        )
        if not isinstance(result.report, ProfileReport):  # pragma: no cover - asked for one
            raise InferenceError(f"a worker returned no profile report for '{model.name}'")
        return result.report

    try:
        for index in range(count):
            first = runs[0].latency if runs else None
            each = (
                repeat.per_run_settings(settings)
                if first is None
                else repeat.per_run_settings(settings, first.iterations, first.warmup_iterations)
            )
            logger.info("run %d of %d of '%s' %s", index + 1, count, model.name, where)
            runs.append(one_run(index, each))
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_result", None)  # an interrupted run here
        worker = getattr(exc, "worker_result", None)  # an interrupted worker
        if isinstance(worker, WorkerResult):
            partial = worker.report
        if isinstance(partial, ProfileReport):
            runs.append(partial)
        exc.partial_result = merged() if runs else None  # type: ignore[attr-defined]
        raise
    return merged()
