"""Input and output specs of an ONNX Runtime session, and the input shapes a caller fixes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.base import Dim, TensorSpec
from pyinfer.errors import InvalidArgumentError

logger = logging.getLogger(__name__)


#: ONNX Runtime's type strings -> numpy dtypes. Types numpy lacks (bfloat16, float8, int4)
#: are reported as ``object`` with a logged warning.
_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(object),
    "tensor(complex64)": np.dtype(np.complex64),
    "tensor(complex128)": np.dtype(np.complex128),
}


def _spec(arg: Any, role: str) -> TensorSpec:
    type_text = str(arg.type)
    dtype = _ORT_DTYPES.get(type_text)
    if dtype is None:
        logger.warning(
            "%s '%s' has type %s, which numpy lacks: it is described as dtype object, and only "
            "run_native with OrtValue tensors can feed it",
            role,
            arg.name,
            type_text,
        )
        dtype = np.dtype(object)
    raw = arg.shape
    shape: tuple[Dim, ...] | None = None
    if isinstance(raw, (list, tuple)):
        shape = tuple(_dim(d) for d in raw)
    return TensorSpec(str(arg.name), shape, dtype)


def _dim(value: Any) -> Dim:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value:
        return value
    return None


def _fix_shapes(
    path: Path, specs: tuple[TensorSpec, ...], shapes: Mapping[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    by_name = {s.name: s for s in specs}
    unknown = [k for k in shapes if k not in by_name]
    if unknown:
        raise InvalidArgumentError(
            f"input_shapes names {', '.join(repr(k) for k in unknown)}, which {path} does not "
            f"take; its inputs are {', '.join(repr(s.name) for s in specs)}"
        )
    out = []
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is not None and not spec.accepts_shape(shape):
            raise InvalidArgumentError(
                f"input_shapes gives input '{spec.name}' of {path} the shape {shape}, which "
                f"does not fit its declared shape {spec.shape_text()}"
            )
        out.append(spec if shape is None else TensorSpec(spec.name, shape, spec.dtype))
    return tuple(out)


def _named_dim_overrides(
    path: Path, specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, int]:
    """Named dynamic dimension -> size, from ``input_shapes``; conflicting sizes are an error."""
    sizes: dict[str, int] = {}
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is None or spec.shape is None:
            continue
        for dim, size in zip(spec.shape, shape, strict=True):
            if isinstance(dim, str) and sizes.setdefault(dim, size) != size:
                raise InvalidArgumentError(
                    f"input_shapes gives the dynamic dimension '{dim}' of {path} two sizes, "
                    f"{sizes[dim]} and {size}; inputs sharing it must agree"
                )
    return sizes
