"""What a model takes and gives: a :class:`TensorSpec` per tensor, and checks of arrays."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError

__all__ = [
    "BATCH_NAMES",
    "Dim",
    "TensorSpec",
    "check_array",
    "fit_batch",
    "framework_cause",
    "name_mismatch",
    "output_specs_from_arrays",
    "with_batch_axes",
]

#: Dimension names read as the batch wherever they stand (a state's ``(2, batch, 128)``), with
#: the names of the inputs' own first dimensions. Short names such as ``N`` are not in it: a
#: model of a fixed batch may use them for a sequence.
BATCH_NAMES = frozenset({"batch", "batch_size"})

#: One dimension of a tensor shape: an ``int`` is fixed, a ``str`` is a named dynamic dimension
#: (``"batch"``, ONNX's ``"N"``), ``None`` is a dynamic dimension without a name.
Dim: TypeAlias = int | str | None


def _dim_text(dim: Dim) -> str:
    if dim is None:
        return "?"
    return str(dim)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output.

    Attributes:
        name: The tensor's name in the model (ONNX input name, Keras input name, the argument
            name of a torch ``forward``; ``output_0``, ``output_1``, ... where the model names
            none).
        shape: One entry per dimension: an ``int`` is fixed, a ``str`` names a dynamic dimension
            (``"batch"``), ``None`` is dynamic without a name. ``None`` for the whole shape means
            the rank itself is unknown (a torch module whose inputs were not declared).
        dtype: The numpy dtype of the tensor's elements.
        batch_axis: The axis that holds the items of a batch: 0 for most tensors, 1 for a
            recurrent state ``(layers, batch, hidden)``, ``None`` for a tensor without one (a
            0-d scalar such as a sample rate, always ``None`` for 0-d shapes), which a batch
            shares.
    """

    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.float32))
    batch_axis: int | None = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            if not self.shape:
                object.__setattr__(self, "batch_axis", None)
            elif self.batch_axis is not None and not 0 <= self.batch_axis < len(self.shape):
                raise InvalidArgumentError(
                    f"tensor '{self.name}' of shape {self.shape_text()} has no axis "
                    f"{self.batch_axis} to hold the batch"
                )

    @property
    def rank(self) -> int | None:
        """The number of dimensions, or ``None`` if unknown."""
        return None if self.shape is None else len(self.shape)

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        """Positions of the dynamic dimensions (named or not)."""
        if self.shape is None:
            return ()
        return tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int))

    @property
    def is_dynamic(self) -> bool:
        """Whether any dimension (or the rank) is dynamic."""
        return self.shape is None or bool(self.dynamic_axes)

    @property
    def has_dynamic_batch(self) -> bool:
        """Whether any batch size is accepted: the batch axis is dynamic, or there is none."""
        if self.shape is None or self.batch_axis is None:
            return True
        return not isinstance(self.shape[self.batch_axis], int)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size a fixed batch axis demands, ``None`` when any is accepted."""
        if self.has_dynamic_batch or self.shape is None or self.batch_axis is None:
            return None
        return int(self.shape[self.batch_axis])  # type: ignore[arg-type]

    def concrete_shape(self, batch_size: int | None = None, **dims: int) -> tuple[int, ...]:
        """A shape to build an example input with, dynamic dimensions filled in.

        Args:
            batch_size: Size of a dynamic batch axis (:attr:`batch_axis`, default 1).
            **dims: Sizes of named dynamic dimensions (``sequence=128``).

        Returns:
            The shape with every dimension fixed.

        Raises:
            InvalidArgumentError: If the rank is unknown, or a dynamic dimension other than the
                batch axis has no size in ``dims``.
        """
        if self.shape is None:
            raise InvalidArgumentError(
                f"input '{self.name}' has no declared shape; give the model an input shape "
                "(load_model(..., input_shapes={...}))"
            )
        out: list[int] = []
        for axis, dim in enumerate(self.shape):
            if isinstance(dim, int):
                out.append(dim)
            elif isinstance(dim, str) and dim in dims:
                out.append(int(dims[dim]))
            elif axis == self.batch_axis:
                out.append(1 if batch_size is None else int(batch_size))
            else:
                raise InvalidArgumentError(
                    f"input '{self.name}' has dynamic dimension {axis} ({_dim_text(dim)}) in "
                    f"shape {self.shape_text()}; give its size"
                    + (f" as {dim}=N" if isinstance(dim, str) else "")
                )
        return tuple(out)

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        """Whether a concrete shape fits this spec (same rank, fixed dimensions equal)."""
        if self.shape is None:
            return True
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(d, int) or d == s for d, s in zip(self.shape, shape, strict=True))

    def shape_text(self) -> str:
        """The shape as users read it: ``(batch, 3, 224, 224)``, ``?`` for unnamed dynamics."""
        if self.shape is None:
            return "(unknown)"
        inner = ", ".join(_dim_text(d) for d in self.shape)
        return f"({inner},)" if len(self.shape) == 1 else f"({inner})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: name, shape (dynamic dimensions as strings or null), dtype.

        ``batch_axis`` is there when a tensor of rank 1 or more holds its batch elsewhere than
        on its first axis (a state's ``1``); a 0-d tensor has none.
        """
        return {
            "name": self.name,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype.name,
            # Only where the batch is not first: a state's 1 (a 0-d tensor has none).
            **({"batch_axis": self.batch_axis} if self.shape and self.batch_axis != 0 else {}),
        }

    def __str__(self) -> str:
        return f"{self.name}: {self.shape_text()} {self.dtype.name}"


def name_mismatch(
    model_name: str, names: Sequence[str], given: Iterable[str], where: str = ""
) -> str | None:
    """Says which input names are missing or unexpected, or ``None`` when they match.

    Args:
        model_name: The model, for the message.
        names: The names the model takes, in order.
        given: The names given.
        where: Said after ``inputs`` (``" (item 3)"``).

    Returns:
        The message for an :class:`~pyinfer.errors.InvalidInputError`, or ``None``.
    """
    given = list(given)
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if not (missing or extra):
        return None
    parts = []
    if missing:
        parts.append(f"missing {', '.join(repr(n) for n in missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(repr(n) for n in extra)}")
    return (
        f"model '{model_name}' inputs{where}: {'; '.join(parts)} "
        f"(it takes {', '.join(repr(n) for n in names)})"
    )


def check_array(model_name: str, spec: TensorSpec, value: np.ndarray) -> None:
    """Raises :class:`~pyinfer.errors.InvalidInputError` if ``value`` does not fit ``spec``."""
    if value.dtype != spec.dtype:
        hint = ""
        if np.can_cast(value.dtype, spec.dtype, casting="same_kind"):
            hint = f"; cast it explicitly with .astype(np.{spec.dtype.name})"
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must be {spec.dtype.name}, "
            f"got {value.dtype.name}{hint}"
        )
    if spec.shape is None:
        return
    if value.ndim != len(spec.shape):
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must have {len(spec.shape)} "
            f"dimensions {spec.shape_text()}, got shape {tuple(value.shape)}"
        )
    if not spec.accepts_shape(value.shape):
        bad = [
            i
            for i, (d, s) in enumerate(zip(spec.shape, value.shape, strict=True))
            if isinstance(d, int) and d != s
        ]
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must have shape {spec.shape_text()}, "
            f"got {tuple(value.shape)} (dimension {bad[0]} is {value.shape[bad[0]]}, "
            f"expected {spec.shape[bad[0]]})"
        )


def with_batch_axes(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec] = ()
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The specs with their batch axes read from the dimension names.

    The batch's name is the name of the first dimension of any input whose first dimension is
    named, or one of :data:`BATCH_NAMES`; a tensor whose first dimension is not dynamic but
    another dimension has that name holds its batch there (a recurrent state
    ``(2, batch, 128)``). So does, in a model whose batch is dynamic (an input's first
    dimension is), a tensor whose first dimension is fixed and whose one dynamic dimension has
    no name (``(2, ?, 128)``: an ONNX ``dim_param`` left out). Otherwise the batch is the first
    axis; a 0-d tensor has none.

    Args:
        inputs: The input specs as read from the model.
        outputs: The output specs, whose batch follows the inputs' name.

    Returns:
        The input and output specs with :attr:`TensorSpec.batch_axis` set.
    """
    names = set(BATCH_NAMES)
    names |= {s.shape[0] for s in inputs if s.shape and isinstance(s.shape[0], str)}
    dynamic_batch = any(s.shape and not isinstance(s.shape[0], int) for s in inputs)

    def axis(spec: TensorSpec) -> TensorSpec:
        if not spec.shape:
            return spec
        found = 0
        if isinstance(spec.shape[0], int):
            found = next((i for i, d in enumerate(spec.shape) if d in names), 0)
            unnamed = [i for i, d in enumerate(spec.shape) if not isinstance(d, int)]
            if not found and dynamic_batch and len(unnamed) == 1 and spec.shape[unnamed[0]] is None:
                found = unnamed[0]
        return TensorSpec(spec.name, spec.shape, spec.dtype, found)

    return tuple(axis(s) for s in inputs), tuple(axis(s) for s in outputs)


def output_specs_from_arrays(
    arrays: Mapping[str, np.ndarray], *, dynamic_batch: bool
) -> tuple[TensorSpec, ...]:
    """Output specs observed from one run: shapes as seen, the batch marked dynamic if asked.

    Args:
        arrays: Output name to array from a run.
        dynamic_batch: Whether the first dimension follows the input batch.

    Returns:
        One spec per output, in order.
    """
    specs = []
    for name, arr in arrays.items():
        shape: list[Dim] = list(arr.shape)
        if dynamic_batch and shape:
            shape[0] = "batch"
        specs.append(TensorSpec(name, tuple(shape), arr.dtype))
    return tuple(specs)


#: The longest a framework's cause gets in a one-line message (its middle is cut, never its end).
MAX_CAUSE_CHARS = 400


def framework_cause(exc: BaseException | str) -> str:
    """A framework's error on one line, its first and its last line kept.

    Frameworks put the real cause last (TorchScript's interpreter traceback ends with
    ``builtins.ValueError: Supported sampling rates: [8000, 16000]``); the first line says what
    failed. Both are kept, joined by ``...``; a long middle is cut, never the end. TensorFlow's
    trailing graph context (``[[{{node ...}}]] [Op:...]``) is no cause and is left out.
    """
    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    while len(lines) > 1 and lines[-1].startswith("[["):
        lines.pop()  # TensorFlow's graph context ("[[{{node GatherV2}}]] [Op:...]"): not a cause
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    if len(text) > MAX_CAUSE_CHARS:
        last = lines[-1][-(MAX_CAUSE_CHARS // 2) :]
        text = f"{text[: MAX_CAUSE_CHARS - len(last) - 5]} ... {last}"
    return text


def fit_batch(spec: TensorSpec, array: np.ndarray, batch: int, where: str) -> np.ndarray:
    """An array made a batch of ``batch`` items along the input's batch axis.

    An array of the input's rank is a batch: sliced when it holds more items, repeated in
    turn (item ``i`` is given item ``i % n``) when it holds fewer. An array of one dimension
    less is one item, repeated. An input without a batch axis (a 0-d scalar) is passed as
    given, and so is an input whose shape the model does not declare (TorchScript loaded
    without input shapes: its batch axis is unknown). A dtype of the same kind is cast to the
    input's (``float64`` to ``float32``).

    Args:
        spec: The input.
        array: The array given for it.
        batch: Items the batch must hold.
        where: The array, for messages (``"given input 'x' of model 'm'"``).

    Raises:
        InvalidInputError: If the array's rank or dtype cannot fit the input.
    """
    if array.dtype != spec.dtype:
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise InvalidInputError(
                f"{where} is {array.dtype.name}; the model takes {spec.dtype.name}"
            )
        array = array.astype(spec.dtype)
    axis = spec.batch_axis
    if spec.shape is None or axis is None:
        # No batch axis, or one unknown in an undeclared shape: the array is the call's input.
        if spec.shape is not None and array.ndim != len(spec.shape):
            raise InvalidInputError(
                f"{where} has shape {tuple(array.shape)}; the model takes {spec.shape_text()}"
            )
        return _contiguous(array)
    rank = len(spec.shape)
    if array.ndim == rank - 1:
        array = np.expand_dims(array, axis)
    elif array.ndim != rank:
        raise InvalidInputError(
            f"{where} has shape {tuple(array.shape)}; the model takes {spec.shape_text()} "
            f"(one item without its batch axis {axis}, or a batch)"
        )
    count = int(array.shape[axis])
    if count == 0:
        raise InvalidInputError(f"{where} holds no item (shape {tuple(array.shape)})")
    if count != batch:
        array = np.take(array, np.arange(batch) % count, axis=axis)
    return _contiguous(array)


def _contiguous(array: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would make a 0-d array 1-d.
    return array if array.flags.c_contiguous else array.copy(order="C")
