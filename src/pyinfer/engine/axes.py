"""Each tensor's batch axis: items stacked along it, shared inputs, outputs split back along it.

Inside the engine a batch always holds its items on the first axis, one row per item, for
every input (a shared input too: one row per item, all equal). :class:`BatchLayout` turns such
a batch into what the model takes just before the call (a state's rows moved to its batch axis,
``(2, batch, 128)``; a shared 0-d sample rate given once) and back, and cuts a batch into runs
of items that share the same values (:meth:`BatchLayout.runs`): items whose shared values
differ go to separate model calls, never merged. :class:`OutputAxes` finds each output's batch
axis and moves it first, so outputs split per item; :class:`GivenValues` fills in the inputs
given once to the engine (``input_values``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pyinfer.backends.base import Model, TensorSpec
from pyinfer.engine.results import Arrays
from pyinfer.errors import InferenceError, InvalidArgumentError, InvalidInputError
from pyinfer.preprocess import as_item, stack_items

__all__ = ["BatchLayout", "GivenValues", "OutputAxes", "item_of", "shared_value_text"]

logger = logging.getLogger(__name__)


def _contiguous(array: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would make a 0-d array 1-d.
    return array if array.flags.c_contiguous else array.copy(order="C")


def shared_value_text(value: np.ndarray) -> str:
    """A shared input's value as a message shows it: ``16000``, or a short array."""
    if value.ndim == 0:
        return repr(value.item())
    return np.array2string(value, threshold=6)


def item_of(spec: TensorSpec) -> str:
    """An input's shape per item, as messages show it (``(2, 128)``; ``()`` for a scalar)."""
    if spec.shape is None:
        return "(unknown)"
    axis = spec.batch_axis
    dims = spec.shape if axis is None else spec.shape[:axis] + spec.shape[axis + 1 :]
    inner = ", ".join("?" if d is None else str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


class BatchLayout:
    """Where each input of a model holds its batch, and the moves between layouts.

    Args:
        model: The model.

    Attributes:
        axes: Input name to its batch axis: ``0`` for most (and for an input of undeclared
            shape), ``1`` for a state ``(2, batch, 128)``, ``None`` for an input the batch
            shares (a 0-d sample rate).
        shared: The names of the inputs a batch shares.
        trivial: Whether every input holds its batch first (nothing to move or share).
    """

    def __init__(self, model: Model) -> None:
        self.model_name = model.name
        self.axes: dict[str, int | None] = {
            s.name: 0 if s.shape is None else s.batch_axis for s in model.inputs
        }
        self.shared = [n for n, a in self.axes.items() if a is None]
        self.trivial = all(a == 0 for a in self.axes.values())

    def runs(self, arrays: Arrays, count: int) -> list[tuple[int, int]]:
        """``[start, stop)`` runs of consecutive items whose shared inputs are equal."""
        if not self.shared or count <= 1:
            return [(0, count)]
        cuts: set[int] = set()
        for name in self.shared:
            rows = arrays[name][:count].reshape(count, -1)
            differs = np.any(rows[1:] != rows[:-1], axis=1)
            cuts.update(int(i) + 1 for i in np.flatnonzero(differs))
        bounds = [0, *sorted(cuts), count]
        return list(itertools.pairwise(bounds))

    def to_model(self, arrays: Arrays) -> Arrays:
        """A batch with its items first, as the model takes it: each on its own batch axis.

        Raises:
            InvalidInputError: If the items of the batch give a shared input different values
                (the engine calls the model on runs of equal values, so this is a bug guard).
        """
        if self.trivial:
            return arrays
        out: Arrays = {}
        for name, value in arrays.items():
            axis = self.axes.get(name, 0)
            if axis == 0:
                out[name] = value
            elif axis is None:
                first = value[0, ...]
                rows = value.reshape(len(value), -1)
                if len(value) > 1 and np.any(rows[1:] != rows[:1]):
                    other = value[int(np.flatnonzero(np.any(rows != rows[:1], axis=1))[0])]
                    raise InvalidInputError(
                        f"input '{name}' of model '{self.model_name}' is shared by a batch, and "
                        f"its items give it {shared_value_text(first)} and "
                        f"{shared_value_text(other)}"
                    )
                out[name] = first.copy()  # writable: torch.from_numpy warns on a read-only view
            else:
                out[name] = np.ascontiguousarray(np.moveaxis(value, 0, axis))
        return out

    def batch_count(self, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
        """The items each input of a stacked batch (model layout) holds on its batch axis.

        Shared inputs are left out; an array whose rank does not reach its batch axis (a 0-d
        array for a batched input) counts 0 (a message names it).
        """
        counts: dict[str, int] = {}
        for name, value in arrays.items():
            axis = self.axes.get(name, 0)
            if axis is None:
                continue
            counts[name] = int(value.shape[axis]) if value.ndim > axis else 0
        return counts

    def to_items_first(self, arrays: Mapping[str, np.ndarray], count: int) -> Arrays:
        """A stacked batch as the model takes it, its items moved first (shared: repeated)."""
        out: Arrays = {}
        for name, value in arrays.items():
            axis = self.axes.get(name, 0)
            if axis is None:
                out[name] = np.broadcast_to(value, (count, *value.shape))
            elif axis == 0:
                out[name] = value
            else:
                out[name] = np.moveaxis(value, axis, 0)
        return out


class OutputAxes:
    """Finds each output's batch axis, and moves it first so outputs split per item.

    The axis is, in order: the one given (``output_batch_axes``); the output's declared
    batch axis when its dimension there has the name of the inputs' batch dimension (ONNX
    ``batch``, a ``torch.export`` dimension); else the only axis whose size is the call's
    batch. When several axes have that size (a batch of 2 and a state ``(2, batch, 128)``), a
    second call with another batch size tells them apart: the batch axis is the one axis whose
    size follows. It is kept for the engine's later calls. An output that has no such axis is
    refused (:class:`~pyinfer.errors.InferenceError`), never split on a guess.

    Args:
        model: The model.
        given: Output name to batch axis, given by the user.
        fixed_batch: The model's fixed batch, if any (no second call of another size then).
    """

    def __init__(self, model: Model, given: Mapping[str, int], fixed_batch: int | None) -> None:
        self.model = model
        self.fixed_batch = fixed_batch
        self.axes: dict[str, int] = dict(given)
        batch_names = {
            s.shape[s.batch_axis]
            for s in model.inputs
            if s.shape and s.batch_axis is not None and isinstance(s.shape[s.batch_axis], str)
        }
        self._declared = {
            s.name: s.batch_axis
            for s in model.outputs
            if s.shape
            and s.batch_axis is not None
            and (s.shape[s.batch_axis] in batch_names or fixed_batch is not None)
        }

    def rows(self, outputs: Arrays, count: int, probe: Callable[[int], Arrays] | None) -> Arrays:
        """Outputs of a call of ``count`` items (padding included), their batch axis first.

        Args:
            outputs: The model's outputs, as it gives them.
            count: The items of the call.
            probe: Runs the same items at another batch size (its argument), to tell an
                output's batch axis when several have the size; ``None`` where it cannot.

        Raises:
            InferenceError: If an output's batch axis cannot be found.
        """
        unknown = [n for n in outputs if self.axis(n, outputs[n].shape, count) is None]
        if unknown:
            self._tell_apart(unknown, outputs, count, probe)
        axes = self.axes
        if not any(axes[n] for n in outputs):
            return outputs  # every output's items first: nothing to move
        return {n: v if axes[n] == 0 else np.moveaxis(v, axes[n], 0) for n, v in outputs.items()}

    def axis(self, name: str, shape: tuple[int, ...], count: int) -> int | None:
        """The batch axis of one output, ``None`` while several axes could be it.

        Raises:
            InferenceError: If no axis has the call's batch size.
        """
        known = self.axes.get(name)
        if known is not None:
            if known < len(shape) and shape[known] == count:
                return known
            raise InferenceError(
                f"output '{name}' of model '{self.model.name}' has shape {shape} on a batch of "
                f"{count}: its batch axis {known} does not hold {count} items, so the engine "
                "cannot split it per input"
            )
        sizes = [a for a, d in enumerate(shape) if d == count]
        declared = self._declared.get(name)
        if declared is not None and declared in sizes:
            self.axes[name] = declared
            return declared
        if not sizes:
            raise InferenceError(
                f"output '{name}' of model '{self.model.name}' has shape {shape}, with no axis "
                f"of the call's batch size {count}: the engine cannot split it per input"
            )
        if len(sizes) == 1:
            self.axes[name] = sizes[0]
            return sizes[0]
        return None

    def _tell_apart(
        self,
        names: Sequence[str],
        outputs: Arrays,
        count: int,
        probe: Callable[[int], Arrays] | None,
    ) -> None:
        shapes = ", ".join(f"'{n}' {outputs[n].shape}" for n in names)
        hint = (
            "give the engine output_batch_axes={" + ", ".join(f"{n!r}: AXIS" for n in names) + "}"
        )
        where = f"model '{self.model.name}'"
        if probe is None:
            raise InferenceError(
                f"outputs of {where} have several axes of the batch size {count} ({shapes}), "
                f"and a fixed batch gives no other size to tell which holds the batch: {hint}"
            )
        other = count - 1 if count > 1 else 2
        logger.info(
            "%s: outputs %s have several axes of size %d; a batch of %d tells which holds it",
            where,
            shapes,
            count,
            other,
        )
        second = probe(other)
        for name in names:
            first_shape, second_shape = outputs[name].shape, second[name].shape
            follows = [
                a
                for a, (d1, d2) in enumerate(zip(first_shape, second_shape, strict=False))
                if d1 == count and d2 == other
            ]
            if len(first_shape) != len(second_shape) or len(follows) != 1:
                raise InferenceError(
                    f"output '{name}' of {where} has shape {first_shape} on a batch of {count} "
                    f"and {second_shape} on a batch of {other}: no one axis follows the batch, "
                    f"so the engine cannot split it per input; {hint}"
                )
            self.axes[name] = follows[0]
            logger.info("%s: output '%s' holds its batch on axis %d", where, name, follows[0])


class GivenValues:
    """Inputs given once to the engine (``input_values``), filled into each item lacking them.

    It wraps the engine's preprocessor: each item, preprocessed, gets the given values for the
    inputs it does not give itself (an item's own value wins), and a model whose inputs are
    all given but one takes a bare array for that one.

    Args:
        model: The model.
        values: Input name to value: a shared input's whole value (a sample rate ``16000``),
            or one item's value of an input with a batch axis (given to every item).
        preprocessor: The engine's preprocessor, or ``None``.

    Raises:
        InvalidArgumentError: If a name is not an input, or a value does not fit its input.
    """

    def __init__(
        self,
        model: Model,
        values: Mapping[str, Any],
        preprocessor: Callable[[Any], Any] | None,
    ) -> None:
        self.model = model
        self.preprocessor = preprocessor
        self.collate: Callable[[Sequence[Mapping[str, np.ndarray]]], Arrays] = (
            getattr(preprocessor, "collate", None) or stack_items
        )
        specs = {s.name: s for s in model.inputs}
        unknown = [n for n in values if n not in specs]
        if unknown:
            raise InvalidArgumentError(
                f"input_values {', '.join(repr(n) for n in unknown)} are not inputs of model "
                f"'{model.name}' ({', '.join(specs)})"
            )
        self.values = {n: _given_value(specs[n], v, model.name) for n, v in values.items()}
        self._rest = [n for n in specs if n not in self.values]

    def __call__(self, raw: Any) -> dict[str, Any]:
        """One raw item, preprocessed, with the given values filled in."""
        value = self.preprocessor(raw) if self.preprocessor is not None else raw
        return self.fill(value)

    def fill(self, value: Any) -> dict[str, Any]:
        """An item (a dict, or an array for the one input not given) with the given values."""
        return {**self.values, **self.named(value)}

    def named(self, value: Any) -> dict[str, Any]:
        """A dict as it is; an array as the one input not given (or the model's one input)."""
        if not isinstance(value, Mapping) and len(self._rest) == 1 and self.values:
            return {self._rest[0]: value}
        return as_item(self.model, value)  # its message says what to pass


def _given_value(spec: TensorSpec, value: Any, model_name: str) -> np.ndarray:
    """A value given once for an input, in its dtype and per-item shape."""
    where = f"input_values[{spec.name!r}] of model '{model_name}'"
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{where} is not an array or a number: {exc}") from exc
    if array.dtype != spec.dtype:
        cast = array.astype(spec.dtype)
        python_number = isinstance(value, (bool, int, float))
        if not (
            np.can_cast(array.dtype, spec.dtype, casting="same_kind")
            or (python_number and np.array_equal(cast, array))
        ):
            raise InvalidArgumentError(
                f"{where} is {array.dtype.name} ({shared_value_text(array)}); the input is "
                f"{spec.dtype.name}"
            )
        array = cast
    if spec.shape is not None:
        axis = spec.batch_axis
        dims = spec.shape if axis is None else spec.shape[:axis] + spec.shape[axis + 1 :]
        if array.ndim != len(dims) or any(
            isinstance(d, int) and d != s for d, s in zip(dims, array.shape, strict=False)
        ):
            raise InvalidArgumentError(
                f"{where} has shape {tuple(array.shape)}; the input takes {item_of(spec)} "
                + ("(a batch shares it)" if axis is None else "per item")
            )
    return _contiguous(array)
