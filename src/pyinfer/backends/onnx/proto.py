"""Reading the ONNX protobuf without running it.

External data files and their checks (:func:`external_data_files`), parameter counts and bytes.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

from pyinfer.backends.onnx import schema
from pyinfer.errors import CorruptModelError, FrameworkNotInstalledError, UntrustedModelError

logger = logging.getLogger(__name__)


def _read_proto(path: Path) -> Any:
    """The ``ModelProto`` without its external data, or ``None`` (no protobuf, unparsable).

    Read with the part of ONNX's schema pyinfer needs (:mod:`pyinfer.backends.onnx.schema`),
    not the onnx package, whose import takes longer than most models' load. An unparsable file
    is left to ONNX Runtime, whose error is mapped by :func:`_load_error`.
    """
    try:
        model_class = schema.model_proto_class()
    except FrameworkNotInstalledError:
        logger.info(
            "the protobuf package is not installed: parameter count and bytes of %s are "
            "reported as 0 (pip install 'pyinfer-toolkit[onnx]' brings it)",
            path,
        )
        return None
    try:
        return model_class.FromString(path.read_bytes())
    except Exception:  # any parse failure: ONNX Runtime reports it below
        logger.debug("%s could not be parsed as an ONNX model", path, exc_info=True)
        return None


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph of its control-flow nodes (If, Loop, Scan), recursively."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _initializers(proto: Any) -> Iterator[Any]:
    for graph in _graphs(proto.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values


def external_data_files(path: Path) -> list[Path]:
    """The external data files an ``.onnx`` model reads its weights from, in first-use order.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The files named by its initializers that exist beside it (none when the weights are
        inside the file, or the onnx package is not installed to read the graph).
    """
    proto = _read_proto(path)
    if proto is None:
        return []
    found: list[Path] = []
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        if not location or _outside(path.parent, location):
            continue  # never looked at: load() refuses such a model
        target = path.parent / location
        if target.is_file() and target not in found:
            found.append(target)
    return found


def _outside(folder: Path, location: str) -> bool:
    """Whether an external data ``location`` names a file outside the model's folder.

    Absolute paths (POSIX or Windows), ``..`` components and links whose target lies outside
    the folder all count; ONNX Runtime refuses the same, and pyinfer checks before it so that
    not even a file's size is read.
    """
    if location.startswith(("/", "\\")) or PureWindowsPath(location).drive:
        return True
    if ".." in re.split(r"[\\/]", location):
        return True
    try:
        return not (folder / location).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        return True


def _check_external_data(path: Path, proto: Any) -> None:
    """Raises if an external data file of the model is outside its folder, missing or short."""
    folder = path.parent
    missing: list[str] = []
    short: list[str] = []
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        if location and _outside(folder, location):
            raise UntrustedModelError(
                f"{path}: initializer '{tensor.name}' keeps its data in {location!r}, which is "
                f"outside the model's folder {folder}; an ONNX model may read external data "
                "only from files in its own folder (reading another file would copy it into "
                "the model's weights). Put the data file next to the model and save the model "
                "with a relative location (onnx.save(..., location='model.onnx.data'))",
                path=path,
            )
        target = folder / location
        if not location or not target.is_file():
            if location not in missing:
                missing.append(location)
            continue
        end = int(entries.get("offset", 0) or 0) + int(entries.get("length", 0) or 0)
        if end > target.stat().st_size and location not in short:
            short.append(location)
    if missing:
        raise CorruptModelError(
            f"{path} keeps its weights in external data file(s) that are missing: "
            f"{', '.join(str(folder / m) for m in missing)}; copy them next to the model "
            "(a model saved with external data is the .onnx file plus these files)",
            path=path,
        )
    if short:
        raise CorruptModelError(
            f"external data file(s) {', '.join(str(folder / s) for s in short)} of {path} are "
            "shorter than the model says: truncated; copy them again",
            path=path,
        )


def _check_external_entries(path: Path, proto: Any) -> None:
    """Raises if an external data entry is not text, or an offset or length not a number.

    Damaged bytes there get past the protobuf parser (it hands invalid UTF-8 over as bytes).
    """
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        name = tensor.name if isinstance(tensor.name, str) else repr(tensor.name)
        for entry in tensor.external_data:
            key, value = entry.key, entry.value
            if not isinstance(key, str) or not isinstance(value, str):
                problem = f"entry {key!r} = {value!r} is not UTF-8 text"
            elif (
                key in ("offset", "length") and value and not (value.isascii() and value.isdigit())
            ):
                problem = f"{key} {value!r} is not a number of bytes"
            else:
                continue
            raise CorruptModelError(
                f"{path} is damaged: the external data of tensor {name}: {problem}; export or "
                "copy the model again",
                path=path,
            )


# Constant-node tensors of these types hold shapes, axes and indices, not weights.
_INDEX_TYPES = frozenset({6, 7})  # TensorProto.INT32, TensorProto.INT64


def _constant_weights(proto: Any) -> Iterator[Any]:
    """Weights stored as ``Constant`` nodes rather than initializers.

    The TorchScript-based exporter writes a frozen module's weights so. Every non-index tensor
    of two or more values counts.
    """
    for graph in _graphs(proto.graph):
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            for attr in node.attribute:
                tensor = attr.t if attr.HasField("t") else None
                if attr.HasField("sparse_tensor"):
                    tensor = attr.sparse_tensor.values
                if tensor is None or int(tensor.data_type) in _INDEX_TYPES:
                    continue
                if math.prod(int(d) for d in tensor.dims) >= 2:
                    yield tensor


def _parameter_sizes(proto: Any) -> tuple[int, int]:
    """(count, bytes) of the model's weights, external data included, without reading it.

    The weights are the initializers plus the weight-like ``Constant`` nodes.
    """
    if proto is None:
        return 0, 0
    count = 0
    bits = 0
    for tensor in itertools.chain(_initializers(proto), _constant_weights(proto)):
        n = math.prod(int(d) for d in tensor.dims)
        count += n
        bits += n * _element_bits(int(tensor.data_type))
    return count, (bits + 7) // 8


def _element_bits(data_type: int) -> int:
    """Bits per element of an ONNX tensor type (0: strings, or a type this table lacks)."""
    return schema.ELEMENT_BITS.get(data_type, 0)
