"""The trimmed ONNX schema pyinfer parses models with, checked against the onnx package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyinfer.backends.onnx import schema

onnx = pytest.importorskip("onnx")

_TYPES = {
    "message": "TYPE_MESSAGE",
    "string": "TYPE_STRING",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
}


@pytest.mark.parametrize("message", sorted(schema.FIELDS))
def test_every_field_is_onnxs_own(message: str) -> None:
    theirs = getattr(onnx, message).DESCRIPTOR
    field_type = type(theirs.fields[0])
    for name, number, kind, label, type_name in schema.FIELDS[message]:
        field = theirs.fields_by_name[name]
        assert field.number == number, name
        if name == "data_location":  # an enum there: the same varint on the wire
            assert field.type == field_type.TYPE_ENUM
        else:
            assert field.type == getattr(field_type, _TYPES[kind]), name
        if hasattr(field, "is_repeated"):  # protobuf 6 and later
            repeated = field.is_repeated
        else:  # pragma: no cover - older protobuf
            repeated = field.label == field_type.LABEL_REPEATED
        assert repeated == (label == "repeated"), name
        if type_name:
            assert field.message_type.name == type_name, name


def test_element_bits_match_onnxs_types() -> None:
    for name, number in onnx.TensorProto.DataType.items():
        if name in ("UNDEFINED", "STRING"):
            expected = 0
        elif name in ("INT4", "UINT4", "FLOAT4E2M1"):
            expected = 4
        elif name in ("INT2", "UINT2"):
            expected = 2
        else:
            np_type = onnx.helper.tensor_dtype_to_np_dtype(number)
            expected = np.dtype(np_type).itemsize * 8
        assert schema.ELEMENT_BITS.get(number, 0) == expected, name


def test_a_model_reads_the_same_as_with_the_onnx_package(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    from pyinfer.backends.onnx import proto

    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), name="w")
    inner = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(5)))],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.DOUBLE, [5])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("If", ["cond"], ["z"], then_branch=inner, else_branch=inner),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("z", TensorProto.DOUBLE, [5]),
        ],
        initializer=[weight],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    ours = proto._read_proto(path)
    theirs = onnx.load(str(path))
    assert ours.graph.initializer[0].name == theirs.graph.initializer[0].name == "w"
    assert list(ours.graph.initializer[0].dims) == [3, 2]
    assert [n.op_type for n in ours.graph.node] == ["MatMul", "If"]
    # 6 float weights and 5 doubles in the If's branches (each branch counted).
    assert proto._parameter_sizes(ours) == (6 + 5 + 5, 6 * 4 + 10 * 8)
    # The fields left out are kept, unread: written back, they give onnx's model again.
    assert onnx.ModelProto.FromString(ours.SerializeToString()) == theirs


def test_loading_an_onnx_model_does_not_import_the_onnx_package(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    path = tmp_path / "neg.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    code = (
        "import sys, pyinfer\n"
        f"m = pyinfer.load_model({str(path)!r})\n"
        "assert m.parameter_count == 0, m.parameter_count\n"
        "print('onnx' in sys.modules, 'ml_dtypes' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["False", "False"]
