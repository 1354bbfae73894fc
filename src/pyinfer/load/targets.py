"""What a load test serves: one server per worker, each running a batch of requests.

A target is a callable (called with no arguments, once per request), a pyinfer ``Model``, an
``InferenceEngine`` (its model), or a sequence of these, one per worker: several model
instances, each with its own session. A model's inputs are made once per batch size, as the
profiler makes them (:func:`pyinfer.profiling.inputs.prepare`), outside any timed region.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyinfer.backends.base import Model
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling.inputs import PreparedCall, batch_for, prepare, resolve_model
from pyinfer.profiling.settings import IntRange, ProfilerSettings

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Server", "make_servers", "request_inputs", "target_name"]


def request_inputs(
    *,
    seed: int = 0,
    input_dims: Mapping[str, int] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    input_values: Mapping[str, float | IntRange] | None = None,
) -> ProfilerSettings:
    """What a model's requests are made of, as the profiler's settings give them.

    Args:
        seed: Seed of the random inputs.
        input_dims: Sizes of named dynamic dimensions other than the batch.
        inputs: Given arrays by input name (one item, or a batch sliced or replicated to each
            request's batch), instead of random ones.
        input_values: Given values by input name: a constant, or an integer range drawn from.
    """
    return ProfilerSettings(
        seed=seed,
        input_dims=dict(input_dims or {}),
        inputs=dict(inputs or {}),
        input_values=dict(input_values or {}),
    )


class Server:
    """Serves batches of ``k`` requests for one worker: ``serve(k)`` runs them in one call.

    Args:
        fn: A callable run once per request (``None`` for a model).
        model: The model (``None`` for a callable).
        request_batch: Items in one request (a model's fixed or the engine's batch size).
        inputs: What the model's requests are made of (:func:`request_inputs`).
    """

    def __init__(
        self,
        fn: Callable[[], object] | None,
        model: Model | None,
        *,
        request_batch: int = 1,
        inputs: ProfilerSettings | None = None,
    ) -> None:
        self.fn = fn
        self.model = model
        self.request_batch = request_batch
        self.inputs = inputs or ProfilerSettings()
        self._calls: dict[int, PreparedCall] = {}
        self._lock = threading.Lock()

    def prepare(self, requests: int) -> Callable[[], object]:
        """The call serving ``requests`` requests at once (inputs made at the first call)."""
        if self.model is None:
            assert self.fn is not None
            return self.fn
        with self._lock:
            call = self._calls.get(requests)
            if call is None:
                batch = requests * self.request_batch
                call = prepare(self.model, batch, settings=self.inputs)
                self._calls[requests] = call
        return call.call

    def serve(self, requests: int) -> None:
        """Runs ``requests`` requests: one model call on a batch of them, or the callable."""
        self.prepare(requests)()


def target_name(target: Any) -> str:
    """The model's file (or name), the engine's model, or the callable's qualified name."""
    first = target[0] if isinstance(target, (list, tuple)) and target else target
    if isinstance(first, Model) or isinstance(getattr(first, "model", None), Model):
        model, _ = resolve_model(first)
        return str(model.path) if model.path is not None else model.name
    return str(getattr(first, "__qualname__", None) or type(first).__name__)


def _server(target: Any, *, max_batch: int, inputs: ProfilerSettings) -> Server:
    if isinstance(target, Model) or isinstance(getattr(target, "model", None), Model):
        model, engine_batch = resolve_model(target)
        request_batch = batch_for(model, engine_batch, 1, engine_batch is not None)
        if max_batch > 1 and not model.has_dynamic_batch:
            raise InvalidArgumentError(
                f"dynamic batching needs a model with a dynamic batch dimension; model "
                f"'{model.name}' has a fixed batch of {request_batch}"
            )
        return Server(None, model, request_batch=request_batch, inputs=inputs)
    if callable(target):
        if max_batch > 1:
            raise InvalidArgumentError(
                "dynamic batching needs a model target (it runs several requests as one batch); "
                f"{target_name(target)} is a plain callable"
            )
        return Server(target, None)
    raise InvalidArgumentError(
        "a load test serves a callable, a pyinfer Model (from load_model) or an "
        f"InferenceEngine, not {type(target).__name__}"
    )


def make_servers(
    target: Any,
    workers: int | None,
    *,
    max_batch: int = 1,
    inputs: ProfilerSettings | None = None,
) -> list[Server]:
    """One server per worker.

    Args:
        target: A callable, model or engine (shared by every worker), or a sequence of them
            (one per worker: several instances).
        workers: Worker threads (default: one, or one per instance of a sequence).
        max_batch: The dynamic batcher's largest batch (1: no batching).
        inputs: What a model's requests are made of (:func:`request_inputs`; default random).

    Raises:
        InvalidArgumentError: On a target of another kind, a worker count below 1 or different
            from the number of instances given, or batching asked of a callable or a model
            with a fixed batch.
    """
    given = inputs or ProfilerSettings()
    if isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        instances = list(target)
        if not instances:
            raise InvalidArgumentError("a load test needs at least one target instance")
        if workers is not None and workers != len(instances):
            raise InvalidArgumentError(
                f"workers={workers} but {len(instances)} target instances were given; give "
                "one instance per worker, or one target shared by every worker"
            )
        return [_server(t, max_batch=max_batch, inputs=given) for t in instances]
    count = 1 if workers is None else workers
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidArgumentError(f"workers must be an integer of at least 1, got {workers!r}")
    shared = _server(target, max_batch=max_batch, inputs=given)
    return [shared] * count
