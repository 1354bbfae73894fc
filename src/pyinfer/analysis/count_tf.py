"""Counts the arithmetic of TensorFlow models: Keras and SavedModel graphs, TFLite operators.

Keras and SavedModel models are traced into a ``tf.function`` at the concrete input shapes of the
batch counted, their variables frozen into constants with every nested function inlined
(``convert_variables_to_constants_v2``), and each operation of the resulting graph is counted
from its static shapes: ``Conv2D``/``Conv3D`` and ``DepthwiseConv2dNative`` as convolutions,
``Conv2DBackpropInput`` as a transposed convolution, ``MatMul``/``BatchMatMul*``/``Einsum`` as
matrix products (of two activations: attention's). A TFLite model is counted from its
interpreter's operators and tensor shapes (``CONV_2D``, ``DEPTHWISE_CONV_2D``,
``FULLY_CONNECTED``, ``BATCH_MATMUL``, ``TRANSPOSE_CONV``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyinfer.analysis import arithmetic as ar
from pyinfer.analysis.arithmetic import Arithmetic
from pyinfer.backends.base import Model
from pyinfer.backends.frameworks import import_tensorflow

__all__ = ["count_tf_function", "count_tflite", "plain_interpreter"]

_CONSTANT_OPS = {"Const", "Placeholder", "NoOp", "Identity", "IdentityN", "ReadVariableOp"}


def _shape(tensor: Any) -> tuple[int, ...] | None:
    dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        return None
    return tuple(int(d) for d in dims)


def _einsum_macs(equation: str, shapes: Sequence[tuple[int, ...]]) -> int:
    """MACs of a two-operand einsum: the product of the sizes of every index it names."""
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, full in zip(lhs, shapes, strict=False):
        letters = term.replace("...", "")
        extra = len(full) - len(letters)
        dims = full
        if "..." in term and extra > 0:
            at = term.index("...")
            sizes["..."] = math.prod(full[at : at + extra])
            dims = full[:at] + full[at + extra :]
        for letter, size in zip(letters, dims, strict=False):
            sizes[letter] = size
    return math.prod(sizes.values())


def _graph_op_macs(op: Any, constants: set[str]) -> tuple[str, int]:
    op_class = ar.classify(op.type)
    out = _shape(op.outputs[0]) if op.outputs else None
    ins = [_shape(t) for t in op.inputs]
    if op_class not in ar.MAC_CLASSES or out is None:
        return op_class, 0
    if op.type == "Conv2DBackpropInput":  # (input_sizes, filter (kh, kw, out, in), grad)
        grad, kernel = ins[2], ins[1]
        if grad is None or kernel is None:
            return ar.CONV_TRANSPOSE, 0
        return ar.CONV_TRANSPOSE, ar.conv_macs(grad, kernel[:-2], kernel[-2])
    if op_class == ar.CONV and len(ins) > 1 and ins[1] is not None:
        kernel = ins[1]
        if op.type == "DepthwiseConv2dNative":  # (kh, kw, in, multiplier)
            return ar.CONV, ar.conv_macs(out, kernel[:-2], 1)
        return ar.CONV, ar.conv_macs(out, kernel[:-2], kernel[-2])  # (k..., in / groups, out)
    if op_class == ar.MATMUL and len(ins) > 1 and ins[0] is not None and ins[1] is not None:
        operands = [t.op for t in op.inputs[:2]]
        weight = any(o.type in _CONSTANT_OPS and o.name in constants for o in operands)
        kind = ar.MATMUL if weight else ar.ATTENTION
        if op.type == "Einsum":
            return kind, _einsum_macs(op.get_attr("equation").decode(), [ins[0], ins[1]])
        transpose_a = _bool_attr(op, ("transpose_a", "adj_x"))
        k = ins[0][-2] if transpose_a else ins[0][-1]
        return kind, math.prod(out) * k
    return op_class, 0


def _bool_attr(op: Any, names: Sequence[str]) -> bool:
    for name in names:
        try:
            return bool(op.get_attr(name))
        except ValueError:
            continue
    return False


def _constants(graph: Any) -> set[str]:
    """Names of the ops whose output is a constant (weights), through Identity/ReadVariableOp."""
    found: set[str] = set()
    for op in graph.get_operations():
        if op.type == "Const" or (
            op.type in {"Identity", "ReadVariableOp"} and all(t.op.name in found for t in op.inputs)
        ):
            found.add(op.name)
    return found


def frozen_function(
    call: Callable[..., Any],
    input_shapes: Mapping[str, Sequence[int]],
    input_dtypes: Mapping[str, str],
) -> Any:
    """``call(**inputs)`` traced at the shapes given, its variables frozen into constants.

    Returns:
        The frozen ``ConcreteFunction``: its graph holds every operation of one call, nested
        functions inlined; its placeholders are named after the inputs.
    """
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = {
        n: tf.TensorSpec(tuple(s), tf.as_dtype(input_dtypes[n]), name=n)
        for n, s in input_shapes.items()
    }
    concrete = tf.function(lambda **kw: call(kw)).get_concrete_function(**specs)
    return convert_variables_to_constants_v2(concrete)


def model_call(model: Model) -> Callable[[Mapping[str, Any]], Any]:
    """A TensorFlow model's call on a dict of tensors, traceable by ``tf.function``."""
    keras_model = getattr(model, "keras_model", None)
    if keras_model is None:
        run: Callable[[Mapping[str, Any]], Any] = model.run_native
        return run
    names = [spec.name for spec in model.inputs]

    def call(inputs: Mapping[str, Any]) -> Any:
        x = inputs[names[0]] if len(names) == 1 else dict(inputs)
        return keras_model(x, training=False)

    return call


def count_tf_function(
    call: Callable[..., Any],
    input_shapes: Mapping[str, Sequence[int]],
    input_dtypes: Mapping[str, str],
    *,
    model: str,
    batch_size: int,
    parameter_bytes: int,
) -> Arithmetic:
    """Traces ``call(**inputs)`` at the shapes given, freezes it, and counts its graph's ops.

    Args:
        call: The model's call on a dict of tensors (keyword arguments by input name).
        input_shapes: Input name to concrete shape.
        input_dtypes: Input name to numpy dtype name.
        model: The model's name.
        batch_size: The batch the shapes hold.
        parameter_bytes: Bytes of the weights.
    """
    tf = import_tensorflow()
    graph = frozen_function(call, input_shapes, input_dtypes).graph
    constants = _constants(graph)
    ops = []
    for op in graph.get_operations():
        if op.type in _CONSTANT_OPS:
            continue
        op_class, macs = _graph_op_macs(op, constants)
        shapes = [_shape(t) for t in op.outputs]
        out_bytes = sum(
            math.prod(s) * t.dtype.size for s, t in zip(shapes, op.outputs, strict=True) if s
        )
        if op_class == ar.DATA_MOVEMENT and op.type in {
            "Reshape",
            "Squeeze",
            "ExpandDims",
            "Shape",
        }:
            out_bytes = 0
        elements = 0
        if op_class not in ar.MAC_CLASSES and op_class != ar.DATA_MOVEMENT and shapes and shapes[0]:
            elements = math.prod(shapes[0]) * (_tf_window(op) if op_class == ar.POOLING else 1)
        weight_bytes, input_bytes = _read_bytes(op, constants)
        ops.append(
            ar.OperatorCount(
                op.name, op.type, op_class, macs, elements, out_bytes, weight_bytes, input_bytes
            )
        )
    input_bytes = sum(
        math.prod(s) * tf.as_dtype(input_dtypes[n]).size for n, s in input_shapes.items()
    )
    return ar.summarise(
        (model, "tensorflow", batch_size),
        ops,
        (parameter_bytes, input_bytes),
        "TensorFlow graph, frozen and inlined, at static shapes",
    )


def _read_bytes(op: Any, constants: set[str]) -> tuple[int, int]:
    """Bytes of the op's constant operands (weights) and of the others (activations)."""
    weights = activations = 0
    for tensor in op.inputs:
        shape = _shape(tensor)
        if shape is None:
            continue
        size = math.prod(shape) * tensor.dtype.size
        if tensor.op.name in constants:
            weights += size
        else:
            activations += size
    return weights, activations


def _tf_window(op: Any) -> int:
    try:
        return math.prod(int(k) for k in op.get_attr("ksize"))
    except ValueError:
        return 1


def _tflite_name(raw: str) -> str:
    """``CONV_2D`` -> ``Conv2D``, for :func:`ar.classify`."""
    return "".join(part.capitalize() for part in re.split(r"_", raw))


def plain_interpreter(path: Path, shapes: Mapping[str, Sequence[int]]) -> Any:
    """A TFLite interpreter of ``path`` without delegates, its inputs resized to ``shapes``.

    A delegate (XNNPACK, on by default) takes over the tensors it runs: after a resize their
    details keep the shapes of the first allocation, so a count at another batch would be
    wrong. Without delegates every tensor is reallocated at the new shapes.

    Args:
        path: The ``.tflite`` file.
        shapes: Input name to shape; an input is matched by its name within the
            interpreter's tensor name (``serving_default_x:0``), else by position.
    """
    tf = import_tensorflow()
    plain = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():  # the loader's own interpreter is made the same way
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=str(path), experimental_op_resolver_type=plain)
    ordered = list(shapes.values())
    for position, detail in enumerate(interpreter.get_input_details()):
        named = [n for n in shapes if n in str(detail["name"])]
        if named:
            shape = shapes[max(named, key=len)]
        elif position < len(ordered):
            shape = ordered[position]
        else:
            continue
        interpreter.resize_tensor_input(detail["index"], list(shape))
    interpreter.allocate_tensors()
    return interpreter


def count_tflite(interpreter: Any, *, model: str, batch_size: int) -> Arithmetic:
    """Counts a TFLite interpreter's operators at its current (allocated) tensor shapes.

    Args:
        interpreter: The ``tf.lite.Interpreter``, with its inputs resized to the batch counted.
        model: The model's name.
        batch_size: The batch its inputs hold.
    """
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    constant: set[int] = set()
    ops = []
    details = interpreter._get_ops_details()  # TFLite's only per-op listing
    produced = {int(o) for d in details for o in d["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    constant = {i for i in tensors if i not in produced and i not in inputs}
    for d in details:
        raw = str(d["op_name"])
        op_class = ar.classify(_tflite_name(raw))
        shapes = {i: tuple(int(s) for s in tensors[i]["shape"]) for i in d["inputs"] if i >= 0}
        ins = [shapes.get(int(i), ()) for i in d["inputs"]]
        outs = [tuple(int(s) for s in tensors[int(o)]["shape"]) for o in d["outputs"]]
        out = outs[0] if outs else ()
        macs = 0
        if raw == "CONV_2D" and len(ins) > 1:  # filter (out, kh, kw, in / groups)
            macs = ar.conv_macs(out, ins[1][1:3], ins[1][3])
        elif raw == "DEPTHWISE_CONV_2D" and len(ins) > 1:  # filter (1, kh, kw, out)
            macs = ar.conv_macs(out, ins[1][1:3], 1)
        elif raw == "TRANSPOSE_CONV" and len(ins) > 2:  # (output_shape, filter (out,kh,kw,in), x)
            op_class = ar.CONV_TRANSPOSE
            macs = ar.conv_macs(ins[2], ins[1][1:3], ins[1][0])
        elif raw == "FULLY_CONNECTED" and len(ins) > 1:  # weights (out, in)
            macs = math.prod(out) * ins[1][-1]
        elif raw == "BATCH_MATMUL" and len(ins) > 1:
            adj_x = False  # the converter folds transposes into adj_x rarely; count K from x
            macs = math.prod(out) * (ins[0][-2] if adj_x else ins[0][-1])
            if not any(int(i) in constant for i in d["inputs"][:2]):
                op_class = ar.ATTENTION
        out_bytes = sum(
            math.prod(s) * tensors[int(o)]["dtype"]().itemsize
            for s, o in zip(outs, d["outputs"], strict=True)
        )
        if raw in {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}:
            out_bytes = 0
        elements = 0
        if op_class not in ar.MAC_CLASSES and op_class != ar.DATA_MOVEMENT and out:
            elements = math.prod(out)
        read = {
            int(i): math.prod(shapes[int(i)]) * tensors[int(i)]["dtype"]().itemsize
            for i in d["inputs"]
            if int(i) >= 0
        }
        ops.append(
            ar.OperatorCount(
                f"{raw}_{d['index']}",
                raw,
                op_class,
                macs,
                elements,
                out_bytes,
                weight_bytes=sum(b for i, b in read.items() if i in constant),
                input_bytes=sum(b for i, b in read.items() if i not in constant),
            )
        )
    param_bytes = sum(
        math.prod(int(s) for s in tensors[i]["shape"]) * tensors[i]["dtype"]().itemsize
        for i in constant
    )
    input_bytes = sum(
        math.prod(int(s) for s in tensors[i]["shape"]) * tensors[i]["dtype"]().itemsize
        for i in inputs
    )
    return ar.summarise(
        (model, "tflite", batch_size),
        ops,
        (param_bytes, input_bytes),
        "TFLite interpreter's operators at their tensor shapes",
    )
