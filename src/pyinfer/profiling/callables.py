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
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from pyinfer.backends.base import Model, ModelFormat, parse_device
from pyinfer.errors import InferenceError, InvalidArgumentError, PyinferError
from pyinfer.profiling.inputs import PreparedCall

__all__ = [
    "CALLABLE_FORMAT",
    "IN_PROCESS_RUNS",
    "CallableFormat",
    "CallableModel",
    "as_failure",
    "qualified_name",
]

logger = logging.getLogger(__name__)

#: What a repeated measurement of a callable says about its runs: they are made one after the
#: other in this process. A closure or a lambda cannot be loaded again in a fresh process, so a
#: callable's repetitions show the variation between runs of one process, not between processes
#: (which is larger: memory layout and core placement change with the process).
IN_PROCESS_RUNS = (
    "runs in one process: a callable cannot be loaded again in a fresh one, so the spread "
    "between processes is not included"
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
    """

    def __init__(
        self,
        function: Callable[..., object],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Wraps a callable.

        Args:
            function: What to time.
            args: Positional arguments for each call.
            kwargs: Keyword arguments for each call.
            name: The name in reports (default: the callable's qualified name).

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
