"""Counts the arithmetic of an ONNX graph from its shapes, inferred by ``onnx.shape_inference``.

The graph's inputs get the concrete shapes of the batch counted (dynamic dimensions filled in),
ONNX infers every tensor's shape, and each node is counted from its inputs' and outputs' shapes:

* ``Conv``: output elements x kernel size x input channels / groups;
* ``ConvTranspose``: input elements x kernel size x output channels / groups;
* ``Gemm``, ``MatMul`` (and their fused and quantized forms): ``batch x M x N x K``; a product
  whose operands are both activations (neither a weight) is attention's part;
* ``Attention``, ``MultiHeadAttention`` (onnxruntime's contrib ops): the two products
  ``Q K^T`` and ``P V``, projections included for ``Attention``;
* pooling: output elements x window; other operators: output elements, as element operations.

The onnx package is imported here only, when a count is asked for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyinfer.analysis import arithmetic as ar
from pyinfer.analysis.arithmetic import Arithmetic
from pyinfer.backends.frameworks import import_onnx, import_onnxruntime
from pyinfer.errors import CorruptModelError

__all__ = ["count_onnx_graph"]

logger = logging.getLogger(__name__)


def _shapes(graph: Any, onnx: Any) -> dict[str, tuple[tuple[int, ...], int]]:
    """Tensor name -> (shape, bytes per element) for every tensor whose shape is known."""
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        ttype = info.type.tensor_type
        if not ttype.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
        if any(d < 0 for d in dims):
            continue
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 4
        out[info.name] = (tuple(dims), int(itemsize))
    for init in graph.initializer:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        out[init.name] = (tuple(int(d) for d in init.dims), int(itemsize))
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            if a.ints:
                return list(a.ints)
            return a.i if a.type == 2 else a.f
    return default


def _node_macs(
    node: Any, shapes: Mapping[str, tuple[tuple[int, ...], int]], weights: set[str]
) -> tuple[str, int]:
    """(class, MACs) of a node; MACs are 0 outside the MAC classes or where a shape is unknown."""
    op = node.op_type
    op_class = ar.classify(op)
    inputs = [shapes.get(n, ((), 0))[0] if n else () for n in node.input]
    out = shapes.get(node.output[0], ((), 0))[0] if node.output else ()
    if op in {"Attention", "MultiHeadAttention"}:
        return ar.ATTENTION, _attention_macs(node, inputs, out)
    if op in {"QLinearConv", "QLinearMatMul"}:
        inputs = [inputs[0], inputs[3]] if len(inputs) > 3 else []  # (x, scale, zp, w, ...)
    if len(inputs) < 2 or not inputs[0] or not inputs[1] or not out:
        return op_class, 0
    if op_class == ar.CONV:
        # weight (C_out, C_in / group, k...): its second dimension is the channels per group
        return ar.CONV, ar.conv_macs(out, inputs[1][2:], inputs[1][1])
    if op_class == ar.CONV_TRANSPOSE:
        # weight (C_in, C_out / group, k...): each input element feeds C_out / group x k outputs
        return ar.CONV_TRANSPOSE, ar.conv_macs(inputs[0], inputs[1][2:], inputs[1][1])
    if op_class == ar.MATMUL:
        if op in {"Gemm", "FusedGemm"} and int(_attr(node, "transA", 0)):
            k = inputs[0][0]
        else:
            k = inputs[0][-1]
        operands = [node.input[0], node.input[3 if op == "QLinearMatMul" else 1]]
        both_activations = not any(name in weights for name in operands)
        return (ar.ATTENTION if both_activations else ar.MATMUL), math.prod(out) * k
    return op_class, 0


def _attention_macs(node: Any, inputs: Sequence[Sequence[int]], out: Sequence[int]) -> int:
    """MACs of ONNX Runtime's ``Attention`` (with projections) or ``MultiHeadAttention``."""
    if not out or not inputs or not inputs[0]:
        return 0
    batch, seq = out[0], out[1]
    hidden = out[-1]
    products = 2 * batch * seq * seq * hidden  # Q K^T and P V over all heads
    if node.op_type == "Attention" and len(inputs) > 1 and inputs[1]:
        products += batch * seq * inputs[1][0] * inputs[1][1]  # the fused QKV projection
    return products


def _element_ops(node: Any, op_class: str, out: tuple[int, ...]) -> int:
    if not out or op_class == ar.DATA_MOVEMENT:
        return 0
    if op_class == ar.POOLING:
        window = _attr(node, "kernel_shape", None)
        return math.prod(out) * (math.prod(window) if window else 1)
    return math.prod(out)


def count_onnx_graph(
    path: Path, input_shapes: Mapping[str, Sequence[int]], *, model: str, batch_size: int
) -> Arithmetic:
    """Counts one inference of the ONNX model at ``path`` with the inputs' shapes given.

    Args:
        path: The ``.onnx`` file (external data is not needed: only shapes are read).
        input_shapes: Input name to its concrete shape for the batch counted.
        model: The model's name for the result.
        batch_size: The batch size the shapes hold.

    Returns:
        The arithmetic, per node in the graph's order.

    Raises:
        CorruptModelError: If onnx cannot read the file or infer its shapes (the message names
            the file and onnx's own cause).
    """
    onnx = import_onnx()
    try:
        proto = onnx.load(str(path), load_external_data=False)
        for inp in proto.graph.input:
            if inp.name in input_shapes:
                dims = inp.type.tensor_type.shape.dim
                for dim, size in zip(dims, input_shapes[inp.name], strict=False):
                    dim.Clear()
                    dim.dim_value = int(size)
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise CorruptModelError(
            f"cannot count the operations of {path}: onnx could not read it or infer its "
            f"shapes ({type(exc).__name__}: {exc})"
        ) from exc
    graph = inferred.graph
    shapes = _shapes(graph, onnx)
    if _unresolved(graph, shapes):
        graph = _symbolic(proto, path) or graph
        shapes = _shapes(graph, onnx)
    weights = {i.name for i in graph.initializer}
    weights |= {n.output[0] for n in graph.node if n.op_type == "Constant" and n.output}
    ops = []
    for index, node in enumerate(graph.node):
        op_class, macs = _node_macs(node, shapes, weights)
        out_shape = shapes.get(node.output[0], ((), 0))[0] if node.output else ()
        counts_macs = op_class in {ar.CONV, ar.CONV_TRANSPOSE, ar.MATMUL, ar.ATTENTION}
        ops.append(
            ar.OperatorCount(
                name=node.name or f"{node.op_type}_{index}",
                op_type=node.op_type,
                op_class=op_class,
                macs=macs,
                element_ops=0 if counts_macs else _element_ops(node, op_class, out_shape),
                output_bytes=_output_bytes(node, shapes, op_class),
                weight_bytes=_input_bytes(node, shapes, lambda n: n in weights),
                input_bytes=_input_bytes(node, shapes, lambda n: n not in weights),
            )
        )
    param_bytes = sum(math.prod(shapes[i.name][0]) * shapes[i.name][1] for i in graph.initializer)
    input_bytes = sum(
        math.prod(shapes[i.name][0]) * shapes[i.name][1]
        for i in graph.input
        if i.name in shapes and i.name not in weights
    )
    return ar.summarise(
        (model, "onnx", batch_size),
        ops,
        (param_bytes, input_bytes),
        "onnx.shape_inference over the graph",
    )


def _unresolved(graph: Any, shapes: Mapping[str, tuple[tuple[int, ...], int]]) -> bool:
    """Whether a node of a MAC class has an output whose shape onnx could not infer."""
    return any(
        node.output and node.output[0] not in shapes and ar.classify(node.op_type) in ar.MAC_CLASSES
        for node in graph.node
    )


def _symbolic(proto: Any, path: Path) -> Any:
    """The graph with ONNX Runtime's symbolic shape inference, or ``None`` where it fails.

    onnx's own inference loses a dimension that flows through ``Expand``/``Where`` on computed
    shapes (a transformer's attention mask): ONNX Runtime's tool, made for transformers, keeps it.
    """
    import_onnxruntime()
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return SymbolicShapeInference.infer_shapes(proto, auto_merge=True).graph
    except Exception as exc:  # any failure leaves onnx's own shapes, logged
        logger.info("ONNX Runtime's symbolic shape inference failed on %s: %s", path, exc)
        return None


def _input_bytes(
    node: Any, shapes: Mapping[str, tuple[tuple[int, ...], int]], which: Callable[[str], bool]
) -> int:
    """Bytes of the node's inputs of known shape that ``which`` picks (weights or activations)."""
    total = 0
    for name in node.input:
        if name and which(name) and name in shapes:
            shape, itemsize = shapes[name]
            total += math.prod(shape) * itemsize
    return total


def _output_bytes(
    node: Any, shapes: Mapping[str, tuple[tuple[int, ...], int]], op_class: str
) -> int:
    """Bytes the node writes (0 for shape-only and view-like data movement)."""
    if op_class == ar.DATA_MOVEMENT and node.op_type in {
        "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Shape", "Constant",
    }:  # fmt: skip
        return 0
    total = 0
    for name in node.output:
        if name in shapes:
            shape, itemsize = shapes[name]
            total += math.prod(shape) * itemsize
    return total
