"""Process instances: each worker's model (or callable) loaded and run in its own process.

Thread instances share one interpreter, so a target that holds Python's GIL (pre- and
post-processing in Python, a pure-Python model) serves one request at a time however many
workers there are. With ``instances="processes"`` each worker is a process started for the load
test (``spawn``: a fresh interpreter, safe with the frameworks' own threads) that loads its own
copy of the model from its file, with the options it was loaded with (its
:attr:`~pyinfer.Model.load_request`), or imports the callable by reference, as the profiler's
repetitions do (:func:`pyinfer.profiling.callables.process_loader`). It makes its inputs and
runs each batch size once before it says it is ready, so start-up is outside every level.

A worker thread of the parent still takes each request and times it: it sends the number of
requests to serve over a pipe and waits for the reply, so latency is counted in the parent from
each request's scheduled time, and the service time includes the pipe's round trip.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyinfer.backends.base import LoadRequest, Model
from pyinfer.errors import InferenceError, InvalidArgumentError
from pyinfer.load.targets import Server, make_servers
from pyinfer.profiling.callables import CallableModel, process_loader
from pyinfer.profiling.settings import ProfilerSettings

logger = logging.getLogger(__name__)

__all__ = ["INSTANCES", "ProcessServer", "serving"]

#: What serves a worker's requests: a thread of this process, or a process of its own.
INSTANCES = ("threads", "processes")

#: How long a process instance may take to start, load its target and warm up.
_START_TIMEOUT_S = 300.0
#: How long a process instance gets to exit once its pipe is closed, before it is terminated.
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Spec:
    """What a process instance loads: a model's load request, or a pickled callable."""

    label: str
    max_batch: int
    load: LoadRequest | None = None
    request_batch: int = 1
    inputs: ProfilerSettings | None = None
    loader: Callable[[], Model] | None = None


def _serve_function(spec: _Spec) -> Callable[[int], object]:
    """In the process instance: the call serving ``k`` requests, warmed up."""
    if spec.loader is not None:
        made = spec.loader()
        assert isinstance(made, CallableModel)
        call = functools.partial(made.function, *made.args, **made.kwargs)
        return lambda _: call()
    from pyinfer.loading import load_model

    assert spec.load is not None
    request = spec.load
    model = load_model(
        request.path, request.format, request.device, name=request.name,
        quiet_native_logs=True, **request.options,
    )  # fmt: skip
    server = Server(None, model, request_batch=spec.request_batch, inputs=spec.inputs)
    for k in range(1, spec.max_batch + 1):
        server.serve(k)
    return server.serve


def _instance_main(conn: Any, spec: _Spec) -> None:
    """A process instance: load, say ready (or why not), then serve until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the test, then closes us
    try:
        serve = _serve_function(spec)
    except BaseException as exc:  # reported to the parent, which raises it typed
        conn.send(f"{type(exc).__name__}: {exc}")
        return
    conn.send(None)
    while True:
        try:
            requests = conn.recv()
        except (EOFError, OSError):
            return
        try:
            serve(requests)
        except Exception as exc:  # a failed request is the parent's to count
            conn.send(f"{type(exc).__name__}: {exc}")
        else:
            conn.send(None)


class ProcessServer(Server):
    """A worker's server whose calls run in a process instance, over a pipe.

    Calls from several threads are served one at a time, as one process serves them.
    """

    def __init__(self, spec: _Spec, context: Any) -> None:
        super().__init__(None, None, request_batch=spec.request_batch)
        self.label = spec.label
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_instance_main, args=(child, spec), name=spec.label, daemon=True
        )
        self._process.start()
        child.close()
        self._call_lock = threading.Lock()

    def wait_ready(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Waits until the instance has loaded its target and warmed up.

        Raises:
            InferenceError: If it failed to load or start, with its error.
        """
        if not self._conn.poll(timeout_s):
            raise InferenceError(f"{self.label} did not start within {timeout_s:g} s")
        try:
            error = self._conn.recv()
        except EOFError:
            error = f"it exited with status {self._process.exitcode} before it was ready"
        if error is not None:
            raise InferenceError(f"{self.label} could not load its target: {error}")

    def prepare(self, requests: int) -> Callable[[], object]:
        """The call serving ``requests`` requests at once in the process instance."""
        return functools.partial(self._call, requests)

    def _call(self, requests: int) -> None:
        with self._call_lock:
            try:
                self._conn.send(requests)
                error = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise InferenceError(f"{self.label} is gone: {exc}") from exc
        if error is not None:
            raise InferenceError(f"{self.label}: {error}")

    def close(self) -> None:
        """Closes the pipe (the instance exits), then waits for it; terminates it if need be."""
        self._conn.close()
        self._process.join(_STOP_TIMEOUT_S)
        if self._process.is_alive():
            logger.warning("%s did not exit; terminating it", self.label)
            self._process.terminate()
            self._process.join()


def _spec(server: Server, index: int, max_batch: int) -> _Spec:
    """What process instance ``index`` loads to serve as ``server`` does.

    Raises:
        InvalidArgumentError: If the target cannot be loaded in another process.
    """
    label = f"pyinfer load process instance {index}"
    if server.model is not None:
        request = server.model.load_request
        if request is None:
            raise InvalidArgumentError(
                f"instances='processes': model '{server.model.name}' was not loaded from a "
                "file with pyinfer.load_model (it was made in memory), so a worker process "
                "cannot load its own copy; save it to a file and load that, or serve it with "
                "instances='threads'"
            )
        return _Spec(label, max_batch, request, server.request_batch, server.inputs)
    assert server.fn is not None
    wrapped = CallableModel(server.fn)
    loader = process_loader(wrapped)
    if loader is None:
        raise InvalidArgumentError(
            f"instances='processes': {wrapped.name} cannot be loaded in a worker process: a "
            "lambda, a closure, a local function or code of the __main__ script cannot be "
            "pickled by reference; define it at the top level of an importable module (or a "
            "functools.partial of such a function), or serve it with instances='threads'"
        )
    return _Spec(label, max_batch, loader=loader)


@contextlib.contextmanager
def serving(
    target: Any,
    workers: int | None,
    *,
    instances: str = "threads",
    max_batch: int = 1,
    inputs: ProfilerSettings | None = None,
) -> Iterator[Sequence[Server]]:
    """The workers' servers, for the time of a load test (process instances stopped after).

    Args:
        target: As for :func:`~pyinfer.load.targets.make_servers`.
        workers: Worker count (default: one, or one per instance given).
        instances: ``"threads"`` (each worker a thread of this process) or ``"processes"``
            (each worker a process of its own, loading its own copy of the target).
        max_batch: The dynamic batcher's largest batch.
        inputs: What a model's requests are made of.

    Raises:
        InvalidArgumentError: On an unknown ``instances``, as :func:`make_servers`, or a target
            a process cannot load (a lambda, a model made in memory).
        InferenceError: If a process instance fails to start or load its target.
    """
    if instances not in INSTANCES:
        raise InvalidArgumentError(f"instances must be one of {INSTANCES}, got {instances!r}")
    servers = make_servers(target, workers, max_batch=max_batch, inputs=inputs)
    if instances == "threads":
        yield servers
        return
    specs = [_spec(s, i, max_batch) for i, s in enumerate(servers)]
    context = multiprocessing.get_context("spawn")
    started: list[ProcessServer] = []
    try:
        for spec in specs:
            started.append(ProcessServer(spec, context))
        for server in started:
            server.wait_ready()
        yield started
    finally:
        for server in started:
            server.close()
