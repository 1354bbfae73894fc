"""Batches as the model takes them: stacked-batch checks, a fixed batch's padding and cutting.

:class:`StackedBatchCheck` checks an already stacked batch against the model's input specs (a
cheap path for the common case, the full check with its messages otherwise);
:func:`fixed_batch_of` reads a model's fixed batch, :func:`pad_batch` fills a short batch up to
it and :func:`cut_batch` keeps the outputs of the real items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from pyinfer.backends.base import Model, name_mismatch
from pyinfer.engine.axes import BatchLayout
from pyinfer.engine.results import Arrays
from pyinfer.errors import InferenceError, InvalidArgumentError, InvalidInputError
from pyinfer.preprocess import Casting, cast_arrays, check_item

__all__ = ["StackedBatchCheck", "cut_batch", "fixed_batch_of", "pad_batch"]

logger = logging.getLogger(__name__)


def fixed_batch_of(model: Model) -> int | None:
    """The batch size a model's inputs fix, or ``None`` for a dynamic batch.

    Raises:
        InvalidArgumentError: If the inputs fix different batch sizes.
    """
    # On each input's batch axis: a state (2, batch, 128) does not fix a batch of 2.
    sizes = {spec.fixed_batch for spec in model.inputs if spec.fixed_batch is not None}
    if not sizes:
        return None
    if len(sizes) > 1:
        raise InvalidArgumentError(
            f"model '{model.name}' inputs have different fixed batch sizes {sorted(sizes)}"
        )
    return int(sizes.pop())


def pad_batch(arrays: Arrays, count: int, fixed_batch: int | None, model_name: str) -> Arrays:
    """``count`` stacked items, filled up to ``fixed_batch`` with copies of the last one."""
    if fixed_batch is None or count >= fixed_batch:
        return arrays
    fill = fixed_batch - count
    logger.info(
        "model '%s' takes batches of %d: padding a batch of %d with %d copies of its last item",
        model_name,
        fixed_batch,
        count,
        fill,
    )
    return {k: np.concatenate([v, np.repeat(v[-1:], fill, axis=0)]) for k, v in arrays.items()}


def cut_batch(outputs: Arrays, count: int, fixed_batch: int | None, model_name: str) -> Arrays:
    """The outputs of the ``count`` real items of a (possibly padded) batch.

    Raises:
        InferenceError: If an output is not a batch of the call's size first.
    """
    full = count if fixed_batch is None else max(count, fixed_batch)
    out: Arrays = {}
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != full:
            raise InferenceError(
                f"output '{name}' of model '{model_name}' has shape {value.shape}, "
                f"not a batch of {full} first: the engine cannot split it per input"
            )
        out[name] = value if full == count else value[:count]
    return out


class StackedBatchCheck:
    """Checks stacked batches (as the model takes them) against a model's input specs.

    A stacked batch holds each input's items on that input's batch axis (a state
    ``(2, batch, 128)`` on axis 1) and a shared input once (a 0-d sample rate); it comes back
    with every input's items first (:class:`~pyinfer.engine.axes.BatchLayout`), the form the
    engine runs.

    Args:
        model: The model the batches are for.
        cast_inputs: The dtype cast the engine applies, if any.
        values: Inputs given once to the engine, for those a batch leaves out.
    """

    def __init__(
        self,
        model: Model,
        cast_inputs: Casting | None,
        values: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.model = model
        self.cast_inputs = cast_inputs
        self.layout = BatchLayout(model)
        self.values = dict(values or {})
        # name, dtype, rank (None: unknown) and the fixed dimensions after the batch, per input
        self._fast_specs = [
            (
                spec.name,
                spec.dtype,
                None if spec.shape is None else len(spec.shape),
                ()
                if spec.shape is None
                else tuple((i, d) for i, d in enumerate(spec.shape) if i and isinstance(d, int)),
            )
            for spec in model.inputs
        ]

    def fast(self, xs: Any) -> Arrays | None:
        """A stacked batch checked cheaply, or ``None`` for the full check and its messages.

        The common case passes: every input's batch first, right names, dtypes, ranks and
        fixed dimensions, one batch size, C-contiguous arrays.
        """
        if not self.layout.trivial:
            return None
        given: Mapping[str, Any] = (
            {self._fast_specs[0][0]: xs}
            if isinstance(xs, np.ndarray) and len(self._fast_specs) == 1
            else xs
        )
        if not isinstance(given, Mapping) or len(given) != len(self._fast_specs):
            return None
        count = -1
        for name, dtype, rank, fixed in self._fast_specs:
            value = given.get(name)
            if (
                not isinstance(value, np.ndarray)
                or value.dtype != dtype
                or not value.flags.c_contiguous
                or (rank is not None and value.ndim != rank)
                or value.ndim == 0
                or any(value.shape[axis] != size for axis, size in fixed)
            ):
                return None
            if count not in (-1, value.shape[0]):
                return None
            count = value.shape[0]
        if count < 1:
            return None
        return {name: given[name] for name, _, _, _ in self._fast_specs}

    def full(self, given: Mapping[str, Any]) -> Arrays:
        """A stacked batch checked in full, its items first: the messages say what does not fit.

        Raises:
            InvalidInputError: If the batch does not fit the model.
        """
        arrays = {k: np.asarray(v) for k, v in given.items()}
        arrays = {**{k: v for k, v in self.values.items() if k not in arrays}, **arrays}
        if self.cast_inputs is not None:
            arrays = cast_arrays(arrays, self.model.inputs, self.cast_inputs)
        mismatch = name_mismatch(self.model.name, self.model.input_names(), arrays, "")
        if mismatch:
            raise InvalidInputError(mismatch)
        layout = self.layout
        # An input given once to the engine is one item's value: every item of the batch gets it.
        filled = {k for k in self.values if k not in given and layout.axes.get(k) is not None}
        counts = layout.batch_count({k: v for k, v in arrays.items() if k not in filled})
        lengths = set(counts.values()) or {1}  # only shared inputs: one call
        if len(lengths) != 1 or 0 in lengths:
            sizes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in arrays.items())
            where = (
                "their first axis"
                if layout.trivial
                else "their batch axes ("
                + ", ".join(f"{k}: {'shared' if a is None else a}" for k, a in layout.axes.items())
                + ")"
            )
            raise InvalidInputError(
                f"stacked inputs of model '{self.model.name}' must share one non-zero batch "
                f"size on {where}, got {sizes}"
            )
        count = lengths.pop()
        for name in filled:
            arrays[name] = np.broadcast_to(arrays[name], (count, *arrays[name].shape))
        rows = layout.to_items_first({k: v for k, v in arrays.items() if k not in filled}, count)
        rows.update({k: arrays[k] for k in filled})
        # The first row stands for all: the same names, dtypes and per-item shapes.
        try:
            check_item(self.model, {k: v[0] for k, v in rows.items()}, where=" (stacked batch)")
        except InvalidInputError as exc:
            if "per item" not in str(exc):
                raise
            sizes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in arrays.items())
            taken = "its first axis taken as the batch" if layout.trivial else "batch axes as above"
            raise InvalidInputError(
                f"{exc} (the stacked batch is {sizes}, {taken}; for one input without a "
                "batch axis use predict)"
            ) from exc
        return {
            spec.name: rows[spec.name]
            if layout.axes[spec.name] is None
            else np.ascontiguousarray(rows[spec.name])
            for spec in self.model.inputs
        }
