"""Checks of a TFLite flatbuffer before the interpreter reads it: structure and constants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import import_tensorflow
from pyinfer.errors import CorruptModelError


def _tflite_constants(path: Path) -> tuple[int, int]:
    """Elements and bytes of the constant tensors stored in a TFLite flatbuffer.

    What is counted: every tensor of every subgraph whose buffer holds data in the file, each
    buffer once however many tensors share it. That is the weights and biases, but also the
    small constants a graph carries (reshape targets, padding amounts, axis lists), while
    constants the converter folded away (a zero bias) are not there to count; quantization
    scales and zero points (tensor metadata, not buffers) are not counted. Elements are the
    product of the tensor's shape; bytes the size of its buffer (``int8`` weights count one byte
    each).

    The walk also checks that every buffer lies inside the file, before the interpreter (which
    trusts the offsets) reads it.

    Returns:
        ``(elements, bytes)``.

    Raises:
        CorruptModelError: If the flatbuffer's tables or buffers point outside the file.
    """
    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema

    buf = _StrictBytes(path.read_bytes())
    count = nbytes = 0
    try:
        _check_tflite_structure(schema, buf)
        model = schema.Model.GetRootAs(buf, 0)
        if model.SubgraphsLength() == 0:
            raise ValueError("the model has no subgraph")
        seen: set[int] = set()
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for t in range(subgraph.TensorsLength()):
                tensor = subgraph.Tensors(t)
                index = tensor.Buffer()
                if index <= 0 or index in seen or index >= model.BuffersLength():
                    continue
                buffer = model.Buffers(index)
                if buffer.DataLength() > 0:
                    size = int(buffer.DataAsNumpy().nbytes)  # raises past the end of the file
                elif buffer.Offset() > 1:  # models over 2 GB keep buffers after the flatbuffer
                    size = int(buffer.Size())
                    if buffer.Offset() + size > len(buf):
                        raise ValueError(f"buffer {index} ends past the end of the file")
                else:
                    continue
                seen.add(index)
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.ones(1)
                count += int(np.prod(shape, dtype=np.int64))
                nbytes += size
    except Exception as exc:
        raise CorruptModelError(
            f"{path} is not a valid TFLite model ({type(exc).__name__}: {exc}): its flatbuffer "
            "is damaged or truncated; convert or copy it again",
            path=path,
        ) from exc
    return count, nbytes


class _StrictBytes(bytes):
    """The file's bytes, refusing a slice that runs past the end (a string's bytes + its NUL).

    flatbuffers' Python reader raises on every read past the end except a string's, which it
    slices: this makes that read raise too, as the interpreter's C++ reader would crash on it.
    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and (
            (key.start is not None and key.start < 0)
            or (key.stop is not None and key.stop >= len(self))
        ):
            raise ValueError(
                f"bytes {key.start}..{key.stop} are past the end of the file ({len(self)} bytes)"
            )
        return super().__getitem__(key)


def _check_tflite_structure(schema: Any, buf: bytes) -> None:
    """Reads every field of a TFLite flatbuffer in Python, before the interpreter's C++ does.

    The interpreter builds its graph from the flatbuffer without verifying it, trusting every
    offset, length and index: a damaged file crashes the process (SIGSEGV, SIGBUS) or makes it
    allocate without end. Unpacking the whole model with flatbuffers' Python reader touches the
    same offsets and lengths, each checked against the end of the file (``buf`` is
    :class:`_StrictBytes`), so damage raises here instead. The indices the graph links by
    (tensors, buffers, operator codes, subgraphs) are then checked against what exists.

    Raises:
        ValueError, TypeError, IndexError, struct.error: Where the flatbuffer is damaged (the
            caller maps them to :class:`CorruptModelError`).
    """
    if len(buf) < 8:
        raise ValueError(f"{len(buf)} bytes is too short for a TFLite flatbuffer")
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    subgraphs = model.subgraphs or []
    buffers = len(model.buffers or [])
    codes = len(model.operatorCodes or [])
    for s, subgraph in enumerate(subgraphs):
        tensors = len(subgraph.tensors or [])
        where = f"subgraph {s}"
        for t, tensor in enumerate(subgraph.tensors or []):
            if not 0 <= tensor.buffer < max(buffers, 1):
                raise ValueError(f"{where}: tensor {t} uses buffer {tensor.buffer} of {buffers}")
            _utf8(tensor.name, f"{where}: the name of tensor {t}")
            for dims in (tensor.shape, tensor.shapeSignature):
                for dim in list(dims if dims is not None else []):
                    if dim < -1:
                        raise ValueError(f"{where}: tensor {t} has dimension {dim}")
        indices = list(subgraph.inputs if subgraph.inputs is not None else [])
        indices += list(subgraph.outputs if subgraph.outputs is not None else [])
        for o, op in enumerate(subgraph.operators or []):
            if not 0 <= op.opcodeIndex < codes:
                raise ValueError(f"{where}: operator {o} has opcode {op.opcodeIndex} of {codes}")
            for part in (op.inputs, op.outputs, op.intermediates):
                indices += [i for i in (part if part is not None else []) if i != -1]
        bad = [int(i) for i in indices if not 0 <= i < tensors]
        if bad:
            raise ValueError(f"{where} refers to tensor {bad[0]}, but has {tensors} tensors")
        for i in subgraph.inputs if subgraph.inputs is not None else []:
            # An input is written by set_tensor: one whose data is in the (read-only) file
            # would be written in place.
            data = model.buffers[subgraph.tensors[i].buffer].data if buffers else None
            if data is not None and len(data) > 0:
                raise ValueError(f"{where}: input tensor {i} is a constant (its data is stored)")
    for m, meta in enumerate(model.metadata or []):
        if not 0 <= meta.buffer < buffers:
            raise ValueError(f"metadata {m} uses buffer {meta.buffer} of {buffers}")
    for signature in model.signatureDefs or []:
        key = _utf8(signature.signatureKey, "a signature's name")
        if not key:
            raise ValueError("a signature has no name")
        if not 0 <= signature.subgraphIndex < len(subgraphs):
            raise ValueError(f"signature {key!r} runs subgraph {signature.subgraphIndex}")
        tensors = len(subgraphs[signature.subgraphIndex].tensors or [])
        for entry in (signature.inputs or []) + (signature.outputs or []):
            _utf8(entry.name, f"a tensor name of signature {key!r}")
            if not 0 <= entry.tensorIndex < tensors:
                raise ValueError(f"signature {key!r} names tensor {entry.tensorIndex} of {tensors}")


def _utf8(text: bytes | None, what: str) -> str:
    """``text`` decoded (``""`` for ``None``); ``ValueError`` naming ``what`` if not UTF-8."""
    try:
        decoded = (text or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if "\0" in decoded:  # the interpreter reads names as C strings, cut at the first NUL
        raise ValueError(f"{what} holds a NUL byte: {decoded!r}")
    return decoded
