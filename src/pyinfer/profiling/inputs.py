"""The model and the inputs a measurement runs: made once, outside any timed region.

``model.example_inputs(batch, seed, dims)`` then ``model.to_native(...)``; the timed call is
``model.run_native(native)`` and nothing else (a ``functools.partial``, so no Python frame of
the profiler's own is timed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyinfer.backends.base import Model, fit_batch
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling.settings import IntRange, ProfilerSettings, as_batch_size

__all__ = [
    "PreparedCall",
    "batch_for",
    "check_dims",
    "given_inputs",
    "prepare",
    "resolve_model",
]


def named_dims(model: Model) -> set[str]:
    """The names of the model's named dynamic dimensions (``batch``, ``sequence``...)."""
    return {d for spec in model.inputs for d in (spec.shape or ()) if isinstance(d, str)}


def resolve_model(model_or_engine: Any) -> tuple[Model, int | None]:
    """The model, and the engine's batch size when given an engine (``None`` otherwise).

    Raises:
        InvalidArgumentError: If the argument is neither a model nor holds one.
    """
    if isinstance(model_or_engine, Model):
        return model_or_engine, None
    inner = getattr(model_or_engine, "model", None)
    if isinstance(inner, Model):
        batch = getattr(model_or_engine, "batch_size", None)
        return inner, batch if isinstance(batch, int) and batch >= 1 else None
    raise InvalidArgumentError(
        "PerformanceProfiler needs a pyinfer Model (from load_model) or an object with a "
        f"'.model' that is one, not {type(model_or_engine).__name__}"
    )


@dataclass
class PreparedCall:
    """Inputs made for one batch size, and the call to time."""

    batch_size: int
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    native: dict[str, Any]
    call: Callable[[], object]
    graph: Any = None  # keeps a captured CUDA graph (and its outputs) alive
    # Median seconds per call from a latency run on these inputs: the model is warm, and a
    # throughput run sizes its chunks from this instead of probing again.
    call_s: float | None = None


def batch_for(model: Model, requested: int | None, default: int, explicit: bool) -> int:
    """The batch size to run: ``requested`` (else ``default``), or the model's fixed batch.

    Args:
        model: The model.
        requested: The batch size asked for in the call, if any.
        default: The batch size when none is asked for.
        explicit: Whether ``default`` was asked for (settings or engine) rather than implied.

    Raises:
        InvalidArgumentError: If the batch size is not an integer of at least 1, or differs
            from the model's fixed batch when asked for.
    """
    batch = default if requested is None else as_batch_size(requested, "batch_size")
    if model.has_dynamic_batch:
        return batch
    # The batch axis, not the first dimension: a state (2, batch, 128) holds its batch on 1.
    first = next((s for s in model.inputs if s.fixed_batch is not None), None)
    if first is None or first.fixed_batch is None:  # only scalar inputs: nothing to batch
        return batch
    fixed = first.fixed_batch
    if batch != fixed and (requested is not None or explicit):
        raise InvalidArgumentError(
            f"model '{model.name}' has a fixed batch size of {fixed} (input "
            f"'{first.name}' {first.shape_text()}); it cannot run batch {batch}"
        )
    return fixed


def check_dims(model: Model, input_dims: Mapping[str, int], given: Collection[str] = ()) -> None:
    """Refuses, saying how to fix it, an input dimension that no setting gives a size to.

    Raises:
        InvalidArgumentError: If a dynamic dimension other than the first is named but
            missing from ``input_dims``, or unnamed (the model then needs an input shape).
    """
    skip = set(given)
    given = input_dims
    for spec in model.inputs:
        if spec.name in skip:
            continue
        for axis, dim in enumerate(spec.shape or ()):
            if (
                axis == spec.batch_axis
                or isinstance(dim, int)
                or (isinstance(dim, str) and dim in given)
            ):
                continue
            where = (
                f"input '{spec.name}' of model '{model.name}' has dynamic dimension "
                f"{axis} in shape {spec.shape_text()}"
            )
            if isinstance(dim, str):
                unused = sorted(set(given) - named_dims(model))
                raise InvalidArgumentError(
                    f"{where}; give its size to the profiler as "
                    f"ProfilerSettings(input_dims={{{dim!r}: N}})"
                    + (f" (input_dims {unused} name no dimension of it)" if unused else "")
                )
            raise InvalidArgumentError(
                f"{where}, unnamed, so input_dims cannot size it; load the model with its "
                f"shape: load_model(..., input_shapes={{{spec.name!r}: (...)}})"
            )


def given_inputs(model: Model, batch: int, settings: ProfilerSettings) -> dict[str, np.ndarray]:
    """The inputs of one call of ``batch`` items: given ones fitted, the others random.

    Args:
        model: The model.
        batch: Items per call.
        settings: Their ``inputs`` (the key ``""`` is a one-input model's input, as an
            ``.npy`` gives it), ``input_values``, ``input_dims`` (over the model's
            :attr:`~pyinfer.backends.base.Model.default_dims`) and ``seed``.

    Raises:
        InvalidArgumentError: If a given name is not an input of the model, or an input
            left random has a dimension nothing sizes.
        InvalidInputError: If a given array cannot fit its input.
    """
    specs = {s.name: s for s in model.inputs}
    given_arrays = dict(settings.inputs)
    if "" in given_arrays and len(specs) == 1:  # an .npy: the one input's
        given_arrays = {next(iter(specs)): given_arrays.pop("")}
    names = [*given_arrays, *settings.input_values]
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise InvalidArgumentError(
            f"given input(s) {', '.join(repr(n) for n in unknown)} are not inputs of model "
            f"'{model.name}' ({', '.join(specs)})"
        )
    constants = {n for n, v in settings.input_values.items() if not isinstance(v, IntRange)}
    given = set(given_arrays) | constants
    arrays: dict[str, np.ndarray] = {}
    if any(n not in given for n in specs):
        dims = {**model.default_dims, **settings.input_dims}  # the model's own sizes, overridable
        check_dims(model, dims, given)
        arrays = model.example_inputs(batch, seed=settings.seed, dims=dims)
    for name, array in given_arrays.items():
        where = f"given input '{name}' of model '{model.name}'"
        arrays[name] = fit_batch(specs[name], np.asarray(array), batch, where)
    rng = np.random.default_rng(settings.seed)
    for name, value in settings.input_values.items():
        spec = specs[name]
        shape = arrays[name].shape if name in arrays else spec.concrete_shape(batch)
        if isinstance(value, IntRange):
            if spec.dtype.kind not in "iu":
                raise InvalidArgumentError(
                    f"input '{name}' of model '{model.name}' is {spec.dtype.name}; an integer "
                    "range is for integer inputs"
                )
            drawn = rng.integers(value.low, value.high, size=shape)
            arrays[name] = drawn.astype(spec.dtype)
        else:
            arrays[name] = np.full(shape, value, dtype=spec.dtype)
    return {s.name: arrays[s.name] for s in model.inputs}


def prepare(model: Model, batch: int, *, settings: ProfilerSettings) -> PreparedCall:
    """Inputs of ``batch`` items in the model's native form, and the call to time.

    The inputs are :func:`given_inputs`: the settings' given arrays and values, random
    examples for the rest.
    """
    arrays = given_inputs(model, batch, settings)
    native = model.to_native(arrays)
    return PreparedCall(
        batch_size=batch,
        shapes={k: tuple(int(d) for d in v.shape) for k, v in arrays.items()},
        dtypes={k: v.dtype.name for k, v in arrays.items()},
        native=native,
        call=functools.partial(model.run_native, native),
    )
