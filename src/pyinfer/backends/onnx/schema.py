"""The part of ONNX's protobuf schema that pyinfer reads, without importing the onnx package.

Loading an ``.onnx`` file reads its graph for two things ONNX Runtime does not say: where the
external data lives (checked before ONNX Runtime opens a file) and how many weights there are.
The onnx package parses it, but importing it costs 0.7 s here (its dtype tables import
``ml_dtypes``), which every load and every fresh worker process of a repeated measurement
would pay, against 0.14 s for ONNX Runtime itself. The messages below are ONNX's own, with the
same field numbers and types (``onnx/onnx.proto``), trimmed to the fields read: the rest of a
file (operators' other attributes, raw weight bytes) is kept as unknown fields, as protobuf
does for any field a schema leaves out. They live in a descriptor pool of their own, so that
they never clash with the onnx package's where both are loaded.

``tests/test_onnx_schema.py`` checks every field against the installed onnx package.
"""

from __future__ import annotations

import threading
from typing import Any

from pyinfer.backends import frameworks

__all__ = ["ELEMENT_BITS", "FIELDS", "model_proto_class"]

#: The messages and fields read: message -> (field name, number, type, label, message type).
#: Types: ``"message"``, ``"string"``, ``"int64"``, ``"int32"``; labels: optional or repeated.
FIELDS: dict[str, tuple[tuple[str, int, str, str, str], ...]] = {
    "ModelProto": (("graph", 7, "message", "optional", "GraphProto"),),
    "GraphProto": (
        ("node", 1, "message", "repeated", "NodeProto"),
        ("initializer", 5, "message", "repeated", "TensorProto"),
        ("sparse_initializer", 15, "message", "repeated", "SparseTensorProto"),
    ),
    "NodeProto": (
        ("op_type", 4, "string", "optional", ""),
        ("attribute", 5, "message", "repeated", "AttributeProto"),
        ("domain", 7, "string", "optional", ""),
    ),
    "AttributeProto": (
        ("name", 1, "string", "optional", ""),
        ("t", 5, "message", "optional", "TensorProto"),
        ("g", 6, "message", "optional", "GraphProto"),
        ("graphs", 11, "message", "repeated", "GraphProto"),
        ("sparse_tensor", 22, "message", "optional", "SparseTensorProto"),
    ),
    "TensorProto": (
        ("dims", 1, "int64", "repeated", ""),
        ("data_type", 2, "int32", "optional", ""),
        ("name", 8, "string", "optional", ""),
        ("external_data", 13, "message", "repeated", "StringStringEntryProto"),
        # An enum in ONNX (DEFAULT 0, EXTERNAL 1): the same varint on the wire.
        ("data_location", 14, "int32", "optional", ""),
    ),
    "SparseTensorProto": (
        ("values", 1, "message", "optional", "TensorProto"),
        ("indices", 2, "message", "optional", "TensorProto"),
        ("dims", 3, "int64", "repeated", ""),
    ),
    "StringStringEntryProto": (
        ("key", 1, "string", "optional", ""),
        ("value", 2, "string", "optional", ""),
    ),
}

#: Bits per element of each ONNX tensor type (``TensorProto.DataType``), as stored in
#: ``raw_data``: the 4- and 2-bit types are packed; strings have no fixed size (0); a number not
#: listed (a type newer than this table) counts 0, and ONNX Runtime judges the tensor.
ELEMENT_BITS: dict[int, int] = {
    1: 32,  # FLOAT
    2: 8,  # UINT8
    3: 8,  # INT8
    4: 16,  # UINT16
    5: 16,  # INT16
    6: 32,  # INT32
    7: 64,  # INT64
    8: 0,  # STRING
    9: 8,  # BOOL
    10: 16,  # FLOAT16
    11: 64,  # DOUBLE
    12: 32,  # UINT32
    13: 64,  # UINT64
    14: 64,  # COMPLEX64
    15: 128,  # COMPLEX128
    16: 16,  # BFLOAT16
    17: 8,  # FLOAT8E4M3FN
    18: 8,  # FLOAT8E4M3FNUZ
    19: 8,  # FLOAT8E5M2
    20: 8,  # FLOAT8E5M2FNUZ
    21: 4,  # UINT4
    22: 4,  # INT4
    23: 4,  # FLOAT4E2M1
    24: 8,  # FLOAT8E8M0
    25: 2,  # UINT2
    26: 2,  # INT2
    27: 8,  # FLOAT6E2M3 (one byte per element, as numpy holds it)
    28: 8,  # FLOAT6E3M2
}

_PACKAGE = "pyinfer.onnx_subset"
_lock = threading.Lock()
_model_class: Any = None


def _file_descriptor(descriptor_pb2: Any) -> Any:
    """The ``FileDescriptorProto`` of the trimmed schema (proto2, as ONNX's is)."""
    field = descriptor_pb2.FieldDescriptorProto
    types = {
        "message": field.TYPE_MESSAGE,
        "string": field.TYPE_STRING,
        "int64": field.TYPE_INT64,
        "int32": field.TYPE_INT32,
    }
    labels = {"optional": field.LABEL_OPTIONAL, "repeated": field.LABEL_REPEATED}
    file = descriptor_pb2.FileDescriptorProto(
        name="pyinfer/onnx_subset.proto", package=_PACKAGE, syntax="proto2"
    )
    for message, fields in FIELDS.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, label, type_name in fields:
            entry = proto.field.add(name=name, number=number, type=types[kind], label=labels[label])
            if type_name:
                entry.type_name = f".{_PACKAGE}.{type_name}"
    return file


def model_proto_class() -> Any:
    """The trimmed ``ModelProto`` message class (built once per process).

    Raises:
        FrameworkNotInstalledError: If the protobuf package is not installed.
    """
    global _model_class  # noqa: PLW0603 - built once, guarded by _lock
    with _lock:
        if _model_class is None:
            protobuf = frameworks.import_protobuf()
            pool = protobuf.descriptor_pool.DescriptorPool()
            pool.Add(_file_descriptor(protobuf.descriptor_pb2))
            descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.ModelProto")
            _model_class = protobuf.message_factory.GetMessageClass(descriptor)
        return _model_class
