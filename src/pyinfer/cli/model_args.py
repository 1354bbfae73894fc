"""From a command's model options to a loaded model.

The options are ``--format``, ``--device``, ``--option`` and ``--input-shape``; shared by
``info``, ``run``, ``profile`` and ``sweep``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import FORMATS

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

logger = logging.getLogger(__name__)

__all__ = ["load_from_args", "parse_shape", "shapes_from_specs"]

#: Formats whose files declare no input shapes (a TorchScript archive, a pickled module): the
#: loader takes them from its ``input_shapes`` option.
_SHAPELESS_FORMATS = frozenset(f.name for f in FORMATS if not f.declares_inputs)


def shapes_from_specs(specs: Sequence[str]) -> Any:
    """The loader's ``input_shapes`` from ``--input-shape`` specs that give whole shapes.

    A bare shape (``1x3x224x224``) becomes an unnamed shape for a one-input model, ``NAME=AxB``
    an entry of a dict; the batch dimension (the first) is left dynamic (``"batch"``), so
    ``--batch-size`` and ``sweep`` still choose it. Returns ``None`` when a spec is a named
    dimension (``sequence=128``), which a model without declared shapes cannot have.
    """
    if not specs:
        return None
    named: dict[str, list[int | str]] = {}
    for text in specs:
        name, sep, value = text.partition("=")
        if not sep:
            if len(specs) != 1:
                return None
            return ["batch", *parse_shape(text, text)[1:]]
        if "x" not in value.lower():
            return None
        named[name.strip()] = ["batch", *parse_shape(value, text)[1:]]
    return named


def load_from_args(args: argparse.Namespace) -> Model:
    """Loads ``args.model`` with the shared loading options.

    A torch model without declared input shapes (TorchScript, a pickled module) given whole
    shapes with ``--input-shape`` is loaded with them as its ``input_shapes`` option, unless
    that option is given. The frameworks' native log lines are kept off the console while it
    loads, unless ``--verbose``.
    """
    from pyinfer.loading import detect_format, load_model

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
    return load_model(
        args.model,
        format=args.format,
        device=args.device,
        quiet_native_logs=not getattr(args, "verbose", False),
        **options,
    )


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
