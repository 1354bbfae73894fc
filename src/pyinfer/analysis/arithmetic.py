"""The arithmetic of one inference: multiply-accumulates per operator, by class, with bytes.

A multiply-accumulate (MAC) is one ``a * b + c``; FLOPs are counted as ``2 x MACs`` (one multiply
and one add), the convention of torchvision's model tables and ``torch.utils.flop_counter``.
MACs are counted for the operators that multiply and accumulate (convolutions, transposed
convolutions, matrix products and attention); pooling and elementwise operators (activations,
normalisation, additions) are counted apart, as element operations, and never enter the MACs.
Bias additions are not counted (they are ``N`` additions beside ``N x K`` MACs).

Each framework has its own counter module (:mod:`pyinfer.analysis.count_torch`,
:mod:`~pyinfer.analysis.count_onnx`, :mod:`~pyinfer.analysis.count_tf`); they all produce the
:class:`Arithmetic` of this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pyinfer.report.formatting import format_macs

__all__ = [
    "ATTENTION",
    "CONV",
    "CONV_TRANSPOSE",
    "DATA_MOVEMENT",
    "ELEMENTWISE",
    "MAC_CLASSES",
    "MATMUL",
    "OTHER",
    "POOLING",
    "Arithmetic",
    "OperatorCount",
    "classify",
    "conv_macs",
    "summarise",
]

CONV = "Conv"
CONV_TRANSPOSE = "ConvTranspose"
MATMUL = "MatMul/Gemm"
#: A matrix product of two activations (attention scores ``Q K^T`` and context ``P V``), or a
#: fused attention operator.
ATTENTION = "Attention"
POOLING = "Pooling"
ELEMENTWISE = "Elementwise"
DATA_MOVEMENT = "Data movement"
OTHER = "Other"

#: The classes whose work is counted in MACs; the others count element operations.
MAC_CLASSES = (CONV, CONV_TRANSPOSE, MATMUL, ATTENTION)

# Operator names (lower case, framework prefixes and separators removed) by class.
_POOLING = {
    "maxpool", "averagepool", "avgpool", "globalaveragepool", "globalmaxpool", "lppool",
    "maxpool2d", "avgpool2d", "adaptiveavgpool2d", "adaptivemaxpool2d", "maxpool2dwithindices",
    "averagepool2d", "mean", "reducemean", "maxpoolwithargmax", "globalaveragepooling2d",
    "maxpooling2d", "averagepooling2d",
}  # fmt: skip
_DATA_MOVEMENT = {
    "reshape", "transpose", "concat", "concatenate", "concatv2", "slice", "stridedslice",
    "gather", "gatherv2", "split", "splitv", "squeeze", "unsqueeze", "expanddims", "flatten",
    "view", "permute", "expand", "pad", "padv2", "mirrorpad", "identity", "cast", "copy",
    "clone", "contiguous", "t", "cat", "select", "index", "indexselect", "embedding",
    "shape", "constantofshape", "tile", "pack", "unpack", "where", "zeros", "ones", "empty",
    "fill", "to", "copy_", "narrow", "unbind", "stack", "asstrided", "unsafeview", "alias",
    "resize", "upsample", "upsamplenearest2d", "upsamplebilinear2d", "dequantize", "quantize",
    "memcpy", "memcpytohost", "memcpyfromhost", "reorder", "reorderinput", "reorderoutput",
    "const", "constant", "range",
    "arange", "detach", "lift", "scalartensor", "newzeros", "newones", "newempty", "full",
}  # fmt: skip
_CONV = {
    "conv", "conv2d", "conv1d", "conv3d", "convolution", "fusedconv", "qlinearconv",
    "depthwiseconv2d", "depthwiseconv2dnative", "mkldnnconvolution", "convinteger",
}  # fmt: skip
_CONV_TRANSPOSE = {"convtranspose", "conv2dtranspose", "transposeconv", "conv2dbackpropinput",
                   "convtranspose2d"}  # fmt: skip
_MATMUL = {"matmul", "gemm", "mm", "addmm", "bmm", "baddbmm", "linear", "fullyconnected",
           "batchmatmul", "batchmatmulv2", "batchmatmulv3", "fusedmatmul", "matmulinteger",
           "qlinearmatmul", "einsum", "dense", "fusedgemm", "mkldnnlinear"}  # fmt: skip
_ATTENTION = {"attention", "multiheadattention", "scaleddotproductattention",
              "scaleddotproductflashattentionforcpu", "scaleddotproductflashattention",
              "scaleddotproductefficientattention", "scaleddotproductcudnnattention"
              "groupqueryattention"}  # fmt: skip


def _key(op_type: str) -> str:
    """``aten::_convolution`` -> ``convolution``; ``DepthwiseConv2dNative`` -> lower, bare."""
    name = op_type.rsplit("::", 1)[-1].rsplit(".", 1)[-1] if "::" in op_type else op_type
    name = name.split(".")[0] if name.startswith("aten") else name
    return "".join(ch for ch in name.lower() if ch.isalnum())


def classify(op_type: str) -> str:
    """The class of an operator named by its framework (``Conv``, ``aten::addmm``, ``CONV_2D``).

    Matrix products of two activations are attention's parts, but a name alone cannot say so:
    the counters decide that from the operands. Normalisation, activations (softmax included) and
    arithmetic are elementwise; reshapes, copies and gathers are data movement.

    Args:
        op_type: The framework's operator type.

    Returns:
        One of :data:`CONV`, :data:`CONV_TRANSPOSE`, :data:`MATMUL`, :data:`ATTENTION`,
        :data:`POOLING`, :data:`ELEMENTWISE`, :data:`DATA_MOVEMENT` (:data:`OTHER` only for an
        empty name).
    """
    key = _key(op_type)
    if not key:
        return OTHER
    for names, cls in (
        (_CONV_TRANSPOSE, CONV_TRANSPOSE),
        (_CONV, CONV),
        (_MATMUL, MATMUL),
        (_ATTENTION, ATTENTION),
        (_POOLING, POOLING),
        (_DATA_MOVEMENT, DATA_MOVEMENT),
    ):
        if key in names:
            return cls
    if "attention" in key:
        return ATTENTION
    if "convtranspose" in key or "transposeconv" in key:
        return CONV_TRANSPOSE
    if "conv" in key:
        return CONV
    if "pool" in key:
        return POOLING
    if "matmul" in key or "gemm" in key:
        return MATMUL
    return ELEMENTWISE


def conv_macs(output_shape: Sequence[int], kernel: Sequence[int], in_per_group: int) -> int:
    """MACs of a convolution: every output element sums ``kernel x in_channels / groups`` products.

    Args:
        output_shape: The output's shape, batch and channels included (any layout).
        kernel: The kernel's spatial size.
        in_per_group: Input channels each output channel reads.
    """
    return int(math.prod(output_shape) * math.prod(kernel) * in_per_group)


@dataclass(frozen=True)
class OperatorCount:
    """The arithmetic of one operator of the graph.

    Attributes:
        name: The operator's name in the framework (node name, layer name, ``aten::`` op).
        op_type: The framework's operator type (``Conv``, ``aten::convolution``, ``CONV_2D``).
        op_class: Its class (:func:`classify`).
        macs: Multiply-accumulates (0 for operators outside :data:`MAC_CLASSES`).
        element_ops: Element operations of pooling and elementwise operators (output elements,
            times the window for pooling); 0 for the others.
        output_bytes: Bytes of its outputs.
        weight_bytes: Bytes of the weights it reads (the framework's own word for them: ONNX
            initializers and constants feeding the node, the torch module's parameters and
            buffers, a TensorFlow graph's frozen constants, a TFLite model's constant tensors).
        input_bytes: Bytes of the activations it reads (its operands that are not weights).
    """

    name: str
    op_type: str
    op_class: str
    macs: int = 0
    element_ops: int = 0
    output_bytes: int = 0
    weight_bytes: int = 0
    input_bytes: int = 0

    @property
    def bytes_moved(self) -> int:
        """Activations read, weights read, outputs written: the least traffic of the operator."""
        return self.input_bytes + self.weight_bytes + self.output_bytes


@dataclass(frozen=True)
class Arithmetic:
    """The arithmetic of one inference at a batch size.

    Attributes:
        model: The model's name.
        framework: Who counted: ``torch``, ``onnx``, ``tensorflow`` or ``tflite``.
        method: How it was counted, in words.
        batch_size: The batch size counted.
        macs: Multiply-accumulates of one call at that batch size.
        macs_by_class: MACs per operator class (:data:`MAC_CLASSES`; a class with none is left
            out).
        element_ops_by_class: Element operations of pooling and elementwise operators, per class.
        parameter_bytes: Bytes of the weights.
        activation_bytes: Bytes of every operator's output (views excluded), written once: with
            the weights, the least memory traffic of a call.
        operators: Every operator counted, in the order run.
    """

    model: str
    batch_size: int
    framework: str
    macs: int
    method: str
    macs_by_class: dict[str, int]
    element_ops_by_class: dict[str, int]
    parameter_bytes: int
    activation_bytes: int
    operators: tuple[OperatorCount, ...] = field(default=(), repr=False)

    @property
    def flops(self) -> int:
        """Floating-point operations: ``2 x macs`` (a multiply and an add per MAC)."""
        return 2 * self.macs

    @property
    def macs_per_item(self) -> float:
        """MACs per batch item."""
        return self.macs / self.batch_size

    @property
    def bytes_moved(self) -> int:
        """Weights plus activations: the least memory traffic of one call."""
        return self.parameter_bytes + self.activation_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (:attr:`bytes_moved`); NaN when nothing is moved."""
        moved = self.bytes_moved
        return self.flops / moved if moved else math.nan

    def intensity_by_class(self) -> dict[str, float]:
        """FLOPs per byte of each class with MACs, over its operators' own traffic.

        A class's bytes are, for each of its operators, the activations it reads, the weights
        it reads and the outputs it writes (:attr:`OperatorCount.bytes_moved`): the intensity
        of the class's operators run alone, where the roofline places them. A class whose
        operators have no bytes counted is left out.
        """
        macs: dict[str, int] = {}
        moved: dict[str, int] = {}
        for op in self.operators:
            if op.macs:
                macs[op.op_class] = macs.get(op.op_class, 0) + op.macs
                moved[op.op_class] = moved.get(op.op_class, 0) + op.bytes_moved
        return {k: 2 * macs[k] / moved[k] for k in macs if moved[k] > 0}

    def summary_line(self) -> str:
        """``4.09 G MACs (8.18 GFLOP, FLOPs = 2 x MACs) per call at batch 1; ...``."""
        return (
            f"{format_macs(self.macs)} per call at batch {self.batch_size}; "
            f"weights {self.parameter_bytes / 1e6:.1f} MB, "
            f"activations {self.activation_bytes / 1e6:.1f} MB, "
            f"{self.arithmetic_intensity:.1f} FLOP/byte"
        )


def summarise(
    who: tuple[str, str, int],
    operators: Iterable[OperatorCount],
    weights_and_inputs: tuple[int, int],
    method: str,
) -> Arithmetic:
    """Adds up operators into an :class:`Arithmetic`.

    Args:
        who: The model's name, who counted (framework) and the batch size counted.
        operators: The operators.
        weights_and_inputs: Bytes of the weights, and of the inputs (activations not written
            by an operator).
        method: How it was counted, in words.
    """
    model, framework, batch_size = who
    parameter_bytes, input_bytes = weights_and_inputs
    ops = tuple(operators)
    macs: dict[str, int] = {}
    elements: dict[str, int] = {}
    for op in ops:
        if op.macs:
            macs[op.op_class] = macs.get(op.op_class, 0) + op.macs
        if op.element_ops:
            elements[op.op_class] = elements.get(op.op_class, 0) + op.element_ops
    return Arithmetic(
        model=model,
        framework=framework,
        method=method,
        batch_size=batch_size,
        macs=sum(macs.values()),
        macs_by_class=_ordered(macs),
        element_ops_by_class=_ordered(elements),
        parameter_bytes=int(parameter_bytes),
        activation_bytes=int(input_bytes) + sum(op.output_bytes for op in ops),
        operators=ops,
    )


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
