"""One model input as arrays: conversion, the check against a model's input specs, casts, stacking.

An item is one input *without* the batch dimension, as a dict of input name to array. These
functions turn what a user or a pipeline gives into that form, check it against the model's
input specs (names, ranks, fixed dimensions, dtypes) with messages saying what to change, and
stack items into a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.backends.base import name_mismatch
from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess.arguments import shown

if TYPE_CHECKING:
    from pyinfer.backends.base import Model, TensorSpec

__all__ = ["Casting", "as_array", "as_item", "cast_arrays", "check_item", "stack_items"]

#: The numpy casting rules an input's dtype may be cast under.

Casting = Literal["safe", "same_kind"]


def cast_arrays(
    arrays: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    casting: Casting,
) -> dict[str, np.ndarray]:
    """Casts arrays to their specs' dtypes where numpy's casting rule allows it.

    Args:
        arrays: Input name to array (names not in ``specs`` pass through unchanged).
        specs: The model's input specs.
        casting: ``"safe"`` (no value can change: ``uint8`` to ``float32``, ``int32`` to
            ``int64``) or ``"same_kind"`` (also ``float64`` to ``float32``).

    Returns:
        Input name to array of the spec's dtype.

    Raises:
        InvalidArgumentError: If ``casting`` is neither rule.
        InvalidInputError: If an array's dtype cannot be cast under the rule; the message names
            the input and both dtypes.
    """
    if not (isinstance(casting, str) and casting in ("safe", "same_kind")):
        raise InvalidArgumentError(f"casting must be 'safe' or 'same_kind', not {shown(casting)}")
    if not isinstance(arrays, Mapping):
        raise InvalidInputError(
            f"inputs must be a dict of input name to array, not {type(arrays).__name__}"
        )
    by_name = {s.name: s for s in specs}
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        spec = by_name.get(name)
        array = as_array(value, f"input '{name}'")
        if spec is None or array.dtype == spec.dtype:
            out[name] = array
            continue
        if not np.can_cast(array.dtype, spec.dtype, casting=casting):
            raise InvalidInputError(
                f"input '{name}' is {array.dtype.name} and cannot be cast to "
                f"{spec.dtype.name} with casting={casting!r}"
            )
        out[name] = array.astype(spec.dtype)
    return out


def check_item(
    model: Model,
    item: Mapping[str, Any],
    *,
    casting: Casting | None = None,
    where: str = "",
) -> dict[str, np.ndarray]:
    """Checks one input *without* its batch dimension against a model's input specs.

    Args:
        model: The model the item is for.
        item: Input name to array, each without the batch dimension.
        casting: Cast dtypes under this numpy rule (``"safe"`` or ``"same_kind"``); ``None``
            (default) casts nothing, and a dtype mismatch is an error naming the option.
        where: Said in messages after the input's name (``" (item 7, cat.jpg)"``).

    Returns:
        Input name to contiguous array in the model's input order, dtypes as the specs say.

    Raises:
        InvalidInputError: On a missing or unexpected input, a wrong rank, a wrong fixed
            dimension or a wrong dtype; the message names the input, what was expected and what
            was given.
    """
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"an item for model '{model.name}'{where} must be a dict of input name to array, "
            f"not {type(item).__name__}"
        )
    names = model.input_names()
    mismatch = name_mismatch(model.name, names, item, where)
    if mismatch:
        raise InvalidInputError(mismatch)
    arrays = {n: as_array(item[n], f"input '{n}' of model '{model.name}'{where}") for n in names}
    if casting is not None:
        arrays = cast_arrays(arrays, model.inputs, casting)
    out: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        value = arrays[spec.name]
        if value.dtype != spec.dtype:
            rule = "safe" if np.can_cast(value.dtype, spec.dtype, casting="safe") else "same_kind"
            hint = (
                f"; pass cast_inputs={rule!r} to the engine to cast it"
                if np.can_cast(value.dtype, spec.dtype, casting="same_kind")
                else f"; convert it to {spec.dtype.name} yourself"
            )
            raise InvalidInputError(
                f"input '{spec.name}' of model '{model.name}'{where} must be {spec.dtype.name}, "
                f"got {value.dtype.name}{hint}"
            )
        if spec.shape is not None:
            axis = spec.batch_axis  # a state (2, batch, 128) is (2, 128) per item; a scalar ()
            per_item = spec.shape if axis is None else spec.shape[:axis] + spec.shape[axis + 1 :]
            if value.ndim != len(per_item) or any(
                isinstance(d, int) and d != s for d, s in zip(per_item, value.shape, strict=False)
            ):
                dims = ", ".join(str(d) if isinstance(d, int) else "?" for d in per_item)
                expected = f"({dims},)" if len(per_item) == 1 else f"({dims})"
                raise InvalidInputError(
                    f"input '{spec.name}' of model '{model.name}'{where} must have shape "
                    f"{expected} per item (the model takes {spec.shape_text()} with the batch "
                    f"{_batch_place(axis)}), got {tuple(value.shape)}"
                )
        # ascontiguousarray would make a 0-d array 1-d (a scalar input would gain an axis).
        out[spec.name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
    return out


def _batch_place(axis: int | None) -> str:
    return "first" if axis == 0 else "shared" if axis is None else f"on axis {axis}"


def as_item(model: Model, value: Any) -> dict[str, Any]:
    """One input as a dict of name to value: an array becomes the one input of the model.

    Args:
        model: The model the input is for.
        value: A mapping of input name to array, or one array (for a one-input model): a numpy
            array or anything numpy converts through ``__array__`` (a CPU torch tensor, a
            TensorFlow eager tensor).

    Returns:
        Input name to value.

    Raises:
        InvalidInputError: If ``value`` is neither, cannot be converted, or an array is given to
            a model with several inputs.
    """
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, np.ndarray) and hasattr(value, "__array__"):
        value = as_array(value, f"an input of model '{model.name}'")
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float)):
        names = model.input_names()
        if len(names) != 1:
            raise InvalidInputError(
                f"model '{model.name}' takes {len(names)} inputs ({', '.join(names)}); "
                "pass a dict of name to array"
            )
        return {names[0]: as_array(value, f"an input of model '{model.name}'")}
    raise InvalidInputError(
        f"an input of model '{model.name}' must be a numpy array or a dict of name to array, "
        f"not {type(value).__name__}; give the engine a preprocessor for other items"
    )


def as_array(value: Any, what: str) -> np.ndarray:
    """``np.asarray(value)``, with a conversion failure as a typed error.

    Args:
        value: An array-like (a CPU torch tensor, a TensorFlow eager tensor...).
        what: What the value is, for the message.

    Returns:
        The numpy array.

    Raises:
        InvalidInputError: If numpy cannot convert it (a CUDA tensor, a tensor that requires
            grad); the message says what to do.
    """
    try:
        return np.asarray(value)
    except (TypeError, RuntimeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(
            f"{what} is a {type(value).__name__} numpy cannot read ({exc}); give a numpy array "
            "(a list of equal-length rows; for torch: tensor.detach().cpu().numpy())"
        ) from exc


def stack_items(items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks per-item arrays along a new first (batch) axis.

    Args:
        items: One dict per item, all with the same names.

    Returns:
        Name to stacked array.

    Raises:
        InvalidInputError: If there are no items, they are not dicts of the same names, or their
            shapes differ (a dynamic dimension of different sizes) or dtypes do not mix.
    """
    if not items:
        raise InvalidInputError("no items to stack into a batch")
    names = list(items[0]) if isinstance(items[0], Mapping) else None
    for i, it in enumerate(items):
        if not isinstance(it, Mapping) or names is None or set(it) != set(names):
            got = sorted(map(str, it)) if isinstance(it, Mapping) else type(it).__name__
            raise InvalidInputError(
                f"item {i} of the batch has inputs {got}, not those of item 0 ({names}); every "
                "item must be a dict of the same input names"
            )
    out: dict[str, np.ndarray] = {}
    for name in names:
        arrays = [as_array(it[name], f"input '{name}' of item {i}") for i, it in enumerate(items)]
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) > 1:
            raise InvalidInputError(
                f"input '{name}' has different shapes within one batch ({sorted(shapes)}); "
                "pad them to one size (TextPipeline pads; use padding='max_length') or use "
                "batch_size=1"
            )
        try:
            out[name] = np.stack(arrays)
        except (TypeError, ValueError) as exc:  # dtypes that do not mix (str and float)
            dtypes = sorted({a.dtype.name for a in arrays})
            raise InvalidInputError(
                f"input '{name}' mixes dtypes {dtypes} within one batch ({exc})"
            ) from exc
    return out
