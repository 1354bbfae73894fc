"""Counts the arithmetic of a torch module by running it once under a dispatch mode.

Every ``aten`` operator the module runs passes through :class:`_Counter`: operators that
``torch.utils.flop_counter`` knows (convolutions, ``mm``/``addmm``/``bmm``, the attention
kernels) are counted with its formulas (FLOPs / 2 = MACs); the CPU attention kernel it leaves
out (``_scaled_dot_product_flash_attention_for_cpu``) with the same formula as its CUDA
siblings. A matrix product with a weight of the module among its operands is a ``MatMul/Gemm``;
one of two activations is attention's. This works alike for eager modules, TorchScript modules
(their interpreter calls the same dispatcher) and the module of a ``torch.export`` program.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from pyinfer.analysis import arithmetic as ar
from pyinfer.analysis.arithmetic import Arithmetic
from pyinfer.backends.base import Model
from pyinfer.backends.frameworks import import_torch

__all__ = ["count_torch_module", "unoptimised_module"]

#: aten operators that return a view (or only metadata): they write no activation bytes.
_VIEWS = {
    "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze",
    "unsqueeze", "flatten", "as_strided", "select", "slice", "narrow", "detach", "alias",
    "unbind", "split", "chunk", "view_as", "expand_as", "_reshape_alias", "lift_fresh",
    "unflatten", "split_with_sizes", "contiguous", "sym_size", "sym_stride", "sym_numel",
    "size", "stride", "dim", "numel", "is_contiguous", "_local_scalar_dense", "item",
}  # fmt: skip

_CPU_ATTENTION = "_scaled_dot_product_flash_attention_for_cpu"


def _tensors(value: Any, torch: Any) -> list[Any]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v, torch)]
    return []


def _storage(t: Any) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return 0


def _make_counter(torch: Any, weights: set[int]) -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class _Counter(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.ops: list[ar.OperatorCount] = []

        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func.overloadpacket
            name = packet.__name__
            op_class = ar.classify(f"aten::{name}")
            macs = 0
            if packet in flop_registry:
                macs = int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
                if op_class == ar.CONV and len(args) > 6 and args[6] is True:
                    op_class = ar.CONV_TRANSPOSE
            elif name == _CPU_ATTENTION:
                macs = _sdpa_macs(args[0].shape, args[1].shape, args[2].shape)
                op_class = ar.ATTENTION
            if op_class == ar.MATMUL:
                operands = _tensors(list(args), torch)
                if not any(_storage(t) in weights for t in operands):
                    op_class = ar.ATTENTION
            if op_class not in ar.MAC_CLASSES:
                macs = 0
            outputs = [] if name in _VIEWS else _tensors(out, torch)
            out_bytes = _nbytes(outputs)
            elements = 0
            if op_class not in ar.MAC_CLASSES and op_class != ar.DATA_MOVEMENT and outputs:
                elements = outputs[0].numel()
                if op_class == ar.POOLING:
                    elements *= _window(name, args, outputs[0])
            if name not in _VIEWS:
                read = _tensors([*args, *kwargs.values()], torch)
                weight = [t for t in read if _storage(t) in weights]
                self.ops.append(
                    ar.OperatorCount(
                        name=f"aten::{name}",
                        op_type=f"aten::{name}",
                        op_class=op_class,
                        macs=macs,
                        element_ops=elements,
                        output_bytes=out_bytes,
                        weight_bytes=_nbytes(weight),
                        input_bytes=_nbytes([t for t in read if _storage(t) not in weights]),
                    )
                )
            return out

    return _Counter()


def _nbytes(tensors: list[Any]) -> int:
    return sum(int(t.numel()) * int(t.element_size()) for t in tensors)


def _sdpa_macs(q: Any, k: Any, v: Any) -> int:
    """``Q K^T`` then ``P V``: ``B x H x L x S x (E + Ev)`` for shapes ``(B, H, L, E)``..."""
    *batch, length, embed = (int(d) for d in q)
    source = int(k[-2])
    return math.prod(batch) * length * source * (embed + int(v[-1]))


def _window(name: str, args: Any, out: Any) -> int:
    """The pooling window of ``max_pool2d(x, kernel_size, ...)``-like calls (1 if unknown).

    An adaptive pooling's second argument is its output size: its window is the input's
    elements per output element.
    """
    if name.startswith("adaptive") and out.numel():
        return max(1, int(args[0].numel()) // int(out.numel()))
    kernel = args[1] if len(args) > 1 else None
    if isinstance(kernel, list | tuple) and kernel and all(isinstance(k, int) for k in kernel):
        return math.prod(kernel)
    return 1


def count_torch_module(
    module: Any,
    inputs: Mapping[str, Any],
    *,
    keyword_inputs: frozenset[str],
    model: str,
    batch_size: int,
    parameter_bytes: int,
) -> Arithmetic:
    """Runs ``module`` once on ``inputs`` and counts what it did.

    Args:
        module: The module (eager, scripted, or an exported program's module).
        inputs: Input name to tensor, on the module's device, in the order ``forward`` takes
            them.
        keyword_inputs: The inputs passed by keyword.
        model: The model's name.
        batch_size: The batch the inputs hold.
        parameter_bytes: Bytes of the module's weights.

    Returns:
        The arithmetic, one operator per ``aten`` call in the order run.
    """
    torch = import_torch()
    weights = {_storage(p) for p in _weights(module)}
    weights.discard(0)
    counter = _make_counter(torch, weights)
    positional = [v for k, v in inputs.items() if k not in keyword_inputs]
    named = {k: v for k, v in inputs.items() if k in keyword_inputs}
    with torch.no_grad(), counter:
        module(*positional, **named)
    input_bytes = sum(t.numel() * t.element_size() for t in inputs.values())
    return ar.summarise(
        (model, "torch", batch_size),
        counter.ops,
        (parameter_bytes, input_bytes),
        "torch dispatch of every aten operator, torch.utils.flop_counter's formulas",
    )


def _weights(module: Any) -> list[Any]:
    found: list[Any] = []
    for getter in ("parameters", "buffers"):
        fn = getattr(module, getter, None)
        if callable(fn):
            try:
                found.extend(fn())
            except (RuntimeError, TypeError):  # pragma: no cover - an odd scripted module
                continue
    return found


def unoptimised_module(model: Model) -> Any:
    """The module as its file defines it: a frozen TorchScript module is read again unfrozen.

    ``torch.jit.freeze`` turns weights into constants and ``optimize_for_inference`` swaps the
    operators for oneDNN's prepacked ones, which no formula knows.
    """
    module = model.module  # type: ignore[attr-defined]
    if model.options.get("freeze") and model.path is not None:
        torch = import_torch()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
            module = torch.jit.load(str(model.path), map_location=str(model.device)).eval()
    return module
