"""From a command's model options to a loaded model, and its given inputs.

The options are ``--format``, ``--device``, ``--option`` and ``--input-shape``; shared by
``info``, ``run``, ``profile`` and ``sweep``; ``--inputs`` and ``--input-value`` give the
inputs ``profile``, ``sweep`` and ``formats`` measure with.

``--input-shape`` grammar (docs/cli.md):

* ``AxBxC``: the whole shape of a one-input model;
* ``NAME=AxB`` (with an ``x``) or ``NAME:SHAPE``: the whole shape of input ``NAME``; after a
  colon a shape may have one size (``lengths:4``) or none (``sr:`` or ``sr:scalar``, a 0-d
  input);
* ``DIM=N`` (no ``x``): the size of the named dynamic dimension ``DIM`` (``sequence=128``).

In a whole shape, ``b`` (or ``batch``) marks the batch axis, sized by ``--batch-size``
(``state:2xbx128``); without one the first dimension is the batch.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import FORMATS

if TYPE_CHECKING:
    import numpy as np

    from pyinfer.backends.base import Model

logger = logging.getLogger(__name__)

__all__ = [
    "BATCH_MARKS",
    "ShapeSpec",
    "add_input_options",
    "given_from_args",
    "input_shapes",
    "load_from_args",
    "load_options_from_args",
    "parse_shape",
    "parse_spec",
    "shapes_from_specs",
]

#: How a whole shape marks its batch axis: ``state:2xbx128``.
BATCH_MARKS = frozenset({"b", "batch"})


@dataclass(frozen=True)
class ShapeSpec:
    """One ``--input-shape`` spec, parsed.

    Attributes:
        text: The spec as given, for messages.
        name: The input (a whole shape) or the dimension (a size); ``None`` for the bare
            whole shape of a one-input model.
        dims: A whole shape's dimensions (an ``int`` each, ``"batch"`` for the marked batch
            axis); ``None`` for a dimension's size.
        size: A named dimension's size; ``None`` for a whole shape.
    """

    text: str
    name: str | None
    dims: tuple[int | str, ...] | None = None
    size: int | None = None

    @property
    def batch_axis(self) -> int | None:
        """The whole shape's batch axis: the marked one, else 0 (``None`` for 0-d)."""
        if not self.dims:
            return None
        return next((i for i, d in enumerate(self.dims) if d == "batch"), 0)

    def loader_shape(self) -> list[int | str]:
        """The shape a loader declares: the batch axis dynamic (``"batch"``)."""
        dims: list[int | str] = list(self.dims or ())
        axis = self.batch_axis
        if axis is not None:
            dims[axis] = "batch"
        return dims


def parse_spec(text: str) -> ShapeSpec:
    """One ``--input-shape`` spec (see the module docstring for the grammar).

    Raises:
        InvalidArgumentError: If it follows none of the forms.
    """
    name, colon, after = text.partition(":")
    if colon:
        body = after.strip().lower()
        if not name.strip():
            raise InvalidArgumentError(f"--input-shape {text}: give the input's name before ':'")
        if body in {"", "scalar", "()"}:
            return ShapeSpec(text, name.strip(), ())
        return ShapeSpec(text, name.strip(), _whole(body, text))
    name, sep, value = text.partition("=")
    if not sep:
        return ShapeSpec(text, None, _whole(text.strip().lower(), text))
    if "x" in value.lower():
        return ShapeSpec(text, name.strip(), _whole(value.strip().lower(), text))
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise InvalidArgumentError(
            f"--input-shape {text}: the size of dimension '{name.strip()}' must be an integer "
            "of at least 1 (a whole shape of one input is NAME:SHAPE, such as sr: for a 0-d "
            "input or lengths:4)"
        )
    return ShapeSpec(text, name.strip(), size=size)


def _whole(body: str, text: str) -> tuple[int | str, ...]:
    parts = body.split("x")
    dims: list[int | str] = []
    for part in parts:
        if part.strip() in BATCH_MARKS:
            dims.append("batch")
        else:
            dims.extend(parse_shape(part, text))
    if dims.count("batch") > 1:
        raise InvalidArgumentError(f"--input-shape {text}: mark one batch axis (b), not several")
    return tuple(dims)


#: Formats whose files declare no input shapes (a TorchScript archive, a pickled module): the
#: loader takes them from its ``input_shapes`` option.
_SHAPELESS_FORMATS = frozenset(f.name for f in FORMATS if not f.declares_inputs)


def shapes_from_specs(specs: Sequence[str]) -> Any:
    """The loader's ``input_shapes`` from the ``--input-shape`` specs that give whole shapes.

    A bare shape (``1x3x224x224``) becomes an unnamed shape for a one-input model,
    ``NAME=AxB`` and ``NAME:SHAPE`` an entry of a dict; the batch axis (the one marked ``b``,
    else the first) is left dynamic (``"batch"``), so ``--batch-size`` and ``sweep`` still
    choose it. Sizes of named dimensions (``sequence=128``) are not shapes and are left out.
    Returns ``None`` when no spec is a whole shape.
    """
    parsed = [parse_spec(t) for t in specs]
    whole = [p for p in parsed if p.dims is not None]
    if not whole:
        return None
    bare = [p for p in whole if p.name is None]
    if bare:
        if len(whole) != 1:
            raise InvalidArgumentError(
                f"--input-shape {bare[0].text}: a shape without a name is for a one-input "
                "model; name each input's shape: NAME:SHAPE"
            )
        return bare[0].loader_shape()
    return {p.name: p.loader_shape() for p in whole}


def load_from_args(args: argparse.Namespace) -> Model:
    """Loads ``args.model`` with the shared loading options.

    A torch model without declared input shapes (TorchScript, a pickled module) given whole
    shapes with ``--input-shape`` is loaded with them as its ``input_shapes`` option, unless
    that option is given. The frameworks' native log lines are kept off the console while it
    loads, unless ``--verbose``.
    """
    from pyinfer.loading import load_model

    return load_model(
        args.model,
        format=args.format,
        device=args.device,
        quiet_native_logs=not getattr(args, "verbose", False),
        **load_options_from_args(args),
    )


def load_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The loader options of ``--option``, ``--trust-code`` and whole ``--input-shape`` shapes.

    (``format`` and ``device`` not included: :func:`load_from_args` passes them apart.)
    """
    from pyinfer.loading import detect_format

    options = dict(args.options)
    if getattr(args, "trust_code", False):
        options["trust_code"] = True
    specs = getattr(args, "input_shape", None) or []
    if specs and "input_shapes" not in options:
        shapes = shapes_from_specs(specs)
        if shapes is not None:
            fmt = args.format or detect_format(args.model).value
            if fmt in _SHAPELESS_FORMATS:
                logger.info("loading %s with input_shapes=%s", args.model, shapes)
                options["input_shapes"] = shapes
    return options


def parse_shape(text: str, where: str) -> tuple[int, ...]:
    """The sizes of a shape such as ``1x3x224x224``; ``where`` is the spec, for the message.

    Raises:
        InvalidArgumentError: If it is not sizes of at least 1 joined by ``x``.
    """
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise InvalidArgumentError(
            f"--input-shape {where}: a shape is sizes joined by x, such as 1x3x224x224"
        ) from None
    if not dims or min(dims) < 1:
        raise InvalidArgumentError(f"--input-shape {where}: every size must be at least 1")
    return dims


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--inputs`` and ``--input-value``: the inputs a measurement runs, instead of random."""
    group = parser.add_argument_group("given inputs")
    group.add_argument(
        "--inputs",
        dest="inputs_file",
        metavar="PATH",
        help="measure with these inputs instead of random ones: an .npz (keys are input "
        "names), an .npy (a one-input model) or a folder of NAME.npy files; one item or a "
        "batch, replicated or sliced along each input's batch axis; inputs left out are random",
    )
    group.add_argument(
        "--input-value",
        action="append",
        default=[],
        dest="input_values",
        metavar="NAME=VALUE",
        help="a constant for an input (sr=16000), filled to its shape, or a range of legal "
        "integers LOW:HIGH drawn at random (input_ids=0:30522); repeatable",
    )


def read_inputs(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, an ``.npy`` (key ``""``: the one input) or a folder of ``.npy``.

    Raises:
        InvalidArgumentError: If the path does not exist, is not one of these, or cannot be read.
    """
    import numpy as np

    where = Path(path)
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.suffix.lower() == ".npy")
        if not files:
            raise InvalidArgumentError(f"--inputs {path}: the folder holds no .npy file")
        return {p.stem: _load_array(p, path) for p in files}
    if not where.is_file():
        raise InvalidArgumentError(f"--inputs {path}: no such file or folder")
    if where.suffix.lower() == ".npy":
        return {"": _load_array(where, path)}
    if where.suffix.lower() != ".npz":
        raise InvalidArgumentError(f"--inputs {path}: give an .npz, an .npy or a folder of .npy")
    try:
        with np.load(where, allow_pickle=False) as loaded:
            return {k: np.asarray(loaded[k]) for k in loaded.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidArgumentError(f"--inputs {path}: cannot read it: {exc}") from exc


def _load_array(file: Path, path: str) -> np.ndarray:
    import numpy as np

    try:
        return np.asarray(np.load(file, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidArgumentError(f"--inputs {path}: cannot read {file.name}: {exc}") from exc


def given_from_args(
    args: argparse.Namespace, model: Model | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The given arrays (``--inputs``) and values (``--input-value``) for ``model``.

    Without a model (``formats`` loads it later) the names are checked when it runs, and an
    ``.npy``'s array has the key ``""`` (the one input's).

    Returns:
        ``ProfilerSettings(inputs=..., input_values=...)``'s two mappings.

    Raises:
        InvalidArgumentError: If a name is not an input of the model, a value is not a number
            or ``LOW:HIGH``, or an ``.npy`` is given for a model of several inputs.
    """
    arrays: dict[str, np.ndarray] = {}
    path = getattr(args, "inputs_file", None)
    if model is None:
        return (read_inputs(path) if path else {}), _values(args, None)
    names = model.input_names()
    if path:
        arrays = read_inputs(path)
        if "" in arrays:
            if len(names) != 1:
                raise InvalidArgumentError(
                    f"--inputs {path}: an .npy feeds a one-input model; '{model.name}' takes "
                    f"{', '.join(names)}: give an .npz or a folder of NAME.npy"
                )
            arrays = {names[0]: arrays[""]}
        unknown = sorted(set(arrays) - set(names))
        if unknown:
            raise InvalidArgumentError(
                f"--inputs {path}: {', '.join(repr(u) for u in unknown)} are not inputs of "
                f"model '{model.name}' ({', '.join(names)})"
            )
    return arrays, _values(args, model)


def _values(args: argparse.Namespace, model: Model | None) -> dict[str, Any]:
    from pyinfer.profiling import IntRange

    values: dict[str, Any] = {}
    for text in getattr(args, "input_values", None) or []:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or (model is not None and name not in model.input_names()):
            of = (
                ""
                if model is None
                else f" of model '{model.name}' ({', '.join(model.input_names())})"
            )
            raise InvalidArgumentError(f"--input-value {text}: give NAME=VALUE for an input{of}")
        low, colon, high = value.partition(":")
        try:
            if colon:
                values[name] = IntRange(int(low), int(high))
            else:
                number = float(value)
                values[name] = int(number) if number.is_integer() and "." not in value else number
        except (ValueError, InvalidArgumentError) as exc:
            raise InvalidArgumentError(
                f"--input-value {text}: a value is a number (16000) or a range of integers "
                f"LOW:HIGH with LOW < HIGH (0:30522): {exc}"
            ) from None
    return values


def input_shapes(
    specs: Sequence[str],
    model: Model,
    batch_size: int | None,
    given: Collection[str] = (),
    *,
    takes_inputs: bool = True,
) -> tuple[dict[str, int], int | None]:
    """Named dimension sizes and the batch size that ``--input-shape`` gives.

    The grammar is :func:`~pyinfer.cli.model_args.parse_spec`'s. A whole shape's batch axis
    (the input's) sets the batch size unless marked ``b``; its other dynamic dimensions size
    their names. Inputs in ``given`` (``--inputs``, ``--input-value``) need no size; a command
    without ``--inputs`` (``takes_inputs=False``) does not suggest it.

    Raises:
        InvalidArgumentError: If a spec names nothing of the model, or contradicts its fixed
            dimensions, another spec or ``--batch-size`` (the message says which).
    """
    inputs = {s.name: s for s in model.inputs}
    named = {
        d
        for s in model.inputs
        for i, d in enumerate(s.shape or ())
        if isinstance(d, str) and i != s.batch_axis
    }
    batch_names: set[str] = {
        str(s.shape[s.batch_axis])
        for s in model.inputs
        if s.shape and s.batch_axis is not None and isinstance(s.shape[s.batch_axis], str)
    }
    dims: dict[str, int] = {}
    batch = batch_size

    def set_dim(text: str, dim: str, size: int) -> None:
        if dims.get(dim, size) != size:
            raise InvalidArgumentError(
                f"--input-shape {text}: dimension '{dim}' is {size} here and {dims[dim]} elsewhere"
            )
        dims[dim] = size

    def set_batch(text: str, size: int) -> None:
        nonlocal batch
        if batch is not None and batch != size:
            raise InvalidArgumentError(
                f"--input-shape {text}: batch {size} contradicts batch size {batch}"
            )
        batch = size

    for text in specs:
        spec_ = parse_spec(text)
        name = spec_.name
        if spec_.dims is not None and name is None:
            if len(inputs) != 1:
                raise InvalidArgumentError(
                    f"--input-shape {text}: model '{model.name}' has {len(inputs)} inputs; "
                    f"give NAME=SHAPE (or NAME:SHAPE) for each of {', '.join(inputs)}"
                )
            name = next(iter(inputs))
        assert name is not None
        if spec_.dims is not None and name in inputs:
            spec = inputs[name]
            if spec.shape is None:
                raise InvalidArgumentError(
                    f"--input-shape {text}: input '{name}' has no declared shape; load it with "
                    f"--option 'input_shapes={{\"{name}\": [...]}}'"
                )
            if len(spec_.dims) != len(spec.shape):
                raise InvalidArgumentError(
                    f"--input-shape {text}: input '{name}' has {len(spec.shape)} dimensions "
                    f"{spec.shape_text()}, not {len(spec_.dims)}"
                )
            for axis, (dim, size) in enumerate(zip(spec.shape, spec_.dims, strict=True)):
                if size == "batch":
                    continue
                assert isinstance(size, int)
                if isinstance(dim, int):
                    if dim != size:
                        raise InvalidArgumentError(
                            f"--input-shape {text}: dimension {axis} of input '{name}' is fixed "
                            f"at {dim} {spec.shape_text()}, not {size}"
                        )
                elif axis == spec.batch_axis:
                    set_batch(text, size)
                elif isinstance(dim, str):
                    set_dim(text, dim, size)
                else:
                    raise InvalidArgumentError(
                        f"--input-shape {text}: dimension {axis} of input '{name}' is dynamic "
                        f"without a name {spec.shape_text()}; load the model with its shape: "
                        f"--option 'input_shapes={{\"{name}\": [...]}}'"
                    )
        elif spec_.size is not None and name in inputs and name not in named | batch_names:
            raise InvalidArgumentError(
                f"--input-shape {text}: NAME=N sizes a named dimension, and '{name}' is an "
                f"input; its whole shape is {name}:{spec_.size} (1-D), or {name}: for a 0-d "
                f"input (its value: --input-value {name}=VALUE)"
            )
        elif spec_.size is not None and (name in named or name in batch_names):
            if name in named:
                set_dim(text, name, spec_.size)
            else:
                set_batch(text, spec_.size)
        else:
            raise InvalidArgumentError(
                f"--input-shape {text}: '{name}' is neither an input of model '{model.name}' "
                f"({', '.join(inputs)}) nor one of its named dimensions "
                f"({', '.join(sorted(named | batch_names)) or 'none'})"
            )
    for spec in model.inputs:
        if spec.name in given:
            continue
        if spec.shape is None:
            raise InvalidArgumentError(
                f"input '{spec.name}' of model '{model.name}' has no declared shape; give it: "
                f"--input-shape {spec.name}:SHAPE"
                + (", or its value: --inputs FILE" if takes_inputs else "")
            )
        for axis, dim in enumerate(spec.shape):
            if axis == spec.batch_axis or isinstance(dim, int) or dim in dims:
                continue
            if isinstance(dim, str) and dim in model.default_dims:
                continue  # the model's own size (a Hugging Face folder's sequence)
            if isinstance(dim, str):
                raise InvalidArgumentError(
                    f"input '{spec.name}' of model '{model.name}' has the dynamic dimension "
                    f"'{dim}' {spec.shape_text()}; give its size: --input-shape {dim}=N"
                )
            raise InvalidArgumentError(
                f"input '{spec.name}' of model '{model.name}' has an unnamed dynamic dimension "
                f"{axis} {spec.shape_text()}; load it with its shape: "
                f"--option 'input_shapes={{\"{spec.name}\": [...]}}'"
            )
    return dims, batch
