"""Input and output specs of a torch module: names, declared shapes and dtypes, export graphs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.base import Dim, TensorSpec
from pyinfer.backends.torch.model import _numpy_dtype, flatten_outputs
from pyinfer.errors import InvalidArgumentError, ModelLoadError

#: TorchScript schema types of scalar arguments: the dtype of the 0-d input that feeds one.
_SCHEMA_SCALARS = {"int": np.int64, "float": np.float64, "bool": np.bool_}


def schema_specs(module: Any) -> dict[str, TensorSpec]:
    """The 0-d specs of a scripted ``forward``'s scalar arguments (``int sr`` is int64).

    A tensor argument's shape and dtype are not in the schema; those are left out.
    """
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    out: dict[str, TensorSpec] = {}
    for arg in [] if schema is None else schema.arguments[1:]:
        dtype = _SCHEMA_SCALARS.get(str(arg.type))
        if dtype is not None:
            out[arg.name] = TensorSpec(arg.name, (), np.dtype(dtype))
    return out


def _input_names(
    module: Any, scripted: bool, opts: Mapping[str, Any], path: Path | None
) -> tuple[list[str], list[str]]:
    """Input names from the forward signature, and those to pass by keyword."""
    declared = opts.get("input_shapes")
    declared_names = set(declared) if isinstance(declared, Mapping) else set()
    names: list[str] = []
    keyword: list[str] = []
    skipped = False
    if scripted:
        forward = getattr(module, "forward", None)
        if forward is None or not hasattr(forward, "schema"):
            where = f"{path}" if path is not None else f"the scripted module {module.original_name}"
            methods = ", ".join(module._c._method_names()) or "none"
            raise ModelLoadError(
                f"{where} is a TorchScript module without a forward method (its methods: "
                f"{methods}); pyinfer runs forward: script or trace a module that defines it "
                "(a file that had one is damaged: save it again)",
                path=path,
            )
        for arg in forward.schema.arguments[1:]:
            if arg.has_default_value() and arg.name not in declared_names:
                skipped = True
                continue
            names.append(arg.name)
            if skipped or arg.kwarg_only:
                keyword.append(arg.name)
        return names, keyword
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - forward without a signature
        return ["input"], []
    for p in params:
        if p.kind in {p.VAR_POSITIONAL, p.VAR_KEYWORD}:
            continue
        if p.default is not p.empty and p.name not in declared_names:
            skipped = True
            continue
        names.append(p.name)
        if skipped or p.kind is p.KEYWORD_ONLY:
            keyword.append(p.name)
    if not names:
        raise ModelLoadError(
            f"the module {type(module).__name__} takes no named inputs (forward(*args)); "
            "pyinfer needs named tensor inputs",
            path=path,
        )
    return names, keyword


def _parse_shape(name: str, shape: Any) -> tuple[Dim, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise InvalidArgumentError(
            f"input_shapes[{name!r}] must be a sequence of dimensions (int, None or a name), "
            f"not {shape!r}"
        )
    dims: list[Dim] = []
    for d in shape:
        if d is None or isinstance(d, str):
            dims.append(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            dims.append(int(d))
        else:
            raise InvalidArgumentError(
                f"input_shapes[{name!r}] has a bad dimension {d!r}: use an int >= 0, None or a "
                "name such as 'batch' for a dynamic dimension"
            )
    return tuple(dims)


def _per_input(
    option: str, value: Any, names: Sequence[str], single: Callable[[Any], bool]
) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in names]
        if unknown:
            raise InvalidArgumentError(
                f"{option} names unknown input(s) {', '.join(repr(u) for u in unknown)}; the "
                f"model's inputs are {', '.join(repr(n) for n in names)}"
            )
        return dict(value)
    if single(value):
        if len(names) != 1:
            raise InvalidArgumentError(
                f"{option} without names fits a one-input model, but this one takes "
                f"{', '.join(repr(n) for n in names)}: pass a dict of input name to value"
            )
        return {names[0]: value}
    raise InvalidArgumentError(f"{option} must be a dict of input name to value, not {value!r}")


def _declared(
    specs: Sequence[TensorSpec], opts: Mapping[str, Any], path: Path | None
) -> tuple[TensorSpec, ...]:
    names = [s.name for s in specs]
    shapes = _per_input(
        "input_shapes",
        opts.get("input_shapes"),
        names,
        lambda v: isinstance(v, Sequence) and not isinstance(v, str),
    )
    dtypes = _per_input(
        "input_dtypes",
        opts.get("input_dtypes"),
        names,
        lambda v: not isinstance(v, Mapping),
    )
    out = []
    for spec in specs:
        shape = spec.shape
        if spec.name in shapes:
            shape = _parse_shape(spec.name, shapes[spec.name])
            _check_against_declared(spec, shape, path)
        dtype = spec.dtype
        if spec.name in dtypes:
            try:
                dtype = np.dtype(dtypes[spec.name])
            except TypeError as exc:
                raise InvalidArgumentError(
                    f"input_dtypes[{spec.name!r}] = {dtypes[spec.name]!r} is not a numpy dtype "
                    "(use e.g. 'float32', 'int64' or np.float16)"
                ) from exc
        out.append(TensorSpec(spec.name, shape, dtype))
    return tuple(out)


def _check_against_declared(spec: TensorSpec, shape: tuple[Dim, ...], path: Path | None) -> None:
    """Refuses an ``input_shapes`` entry that contradicts a shape the file declares.

    A ``torch.export`` program declares its inputs; another rank, or another size of one of
    its fixed dimensions, would fail a guard of the program at the first call.
    """
    if spec.shape is None:
        return
    where = f" of {path}" if path is not None else ""
    given = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
    if len(shape) != len(spec.shape):
        raise InvalidArgumentError(
            f"input_shapes[{spec.name!r}] = {given} has {len(shape)} dimensions, but input "
            f"'{spec.name}'{where} is declared {spec.shape_text()}"
        )
    for axis, (declared, size) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(declared, int) and isinstance(size, int) and declared != size:
            raise InvalidArgumentError(
                f"input_shapes[{spec.name!r}] = {given} contradicts input '{spec.name}'{where}, "
                f"declared {spec.shape_text()}: dimension {axis} is fixed at {declared}"
            )


def _export_specs(
    program: Any, module: Any
) -> tuple[list[TensorSpec], tuple[TensorSpec, ...], list[str]]:
    from torch.utils import _pytree

    sig = program.graph_signature
    nodes = {n.name: n for n in program.graph.nodes}
    user_inputs = list(sig.user_inputs)
    call_sig = program.module_call_graph[0].signature
    arg_names = list(getattr(call_sig, "forward_arg_names", None) or [])
    if len(arg_names) != len(user_inputs):
        arg_names = [str(n) for n in user_inputs]
    batch_symbols: set[str] = set()
    for n in user_inputs:
        val = nodes[n].meta.get("val")
        if val is not None and val.dim() > 0 and not isinstance(val.shape[0], int):
            batch_symbols.add(str(val.shape[0]))

    def spec(name: str, val: Any) -> TensorSpec:
        if val is None or not hasattr(val, "shape"):
            return TensorSpec(name, None)
        dims: list[Dim] = []
        for d in val.shape:
            if isinstance(d, int):
                dims.append(d)
            else:
                sym = str(d)
                dims.append("batch" if sym in batch_symbols else sym)
        return TensorSpec(name, tuple(dims), _numpy_dtype(val.dtype))

    inputs = [
        spec(a, nodes[n].meta.get("val")) for a, n in zip(arg_names, user_inputs, strict=True)
    ]
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    values = list(out_node.args[0])
    user_vals = [
        v for v, s in zip(values, sig.output_specs, strict=False) if s.kind.name in {"USER_OUTPUT"}
    ] or values
    leaves = list(range(len(user_vals)))
    try:
        tree = _pytree.tree_unflatten(leaves, call_sig.out_spec)
        out_names = [n for n, _ in flatten_outputs(tree, "output", top=True)]
    except Exception:  # pragma: no cover - an out_spec pytree cannot rebuild
        out_names = ["output"] if len(leaves) == 1 else [f"output_{i}" for i in leaves]
    outputs = tuple(
        spec(n, getattr(v, "meta", {}).get("val"))
        for n, v in zip(out_names, user_vals, strict=False)
    )
    return inputs, outputs, []
