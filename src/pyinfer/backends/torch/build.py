"""Building a :class:`TorchModel` from a module: sizes, specs, speed-ups, outputs, freezing."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import (
    Device,
    Dim,
    ModelFormat,
    TensorSpec,
    framework_cause,
    with_batch_axes,
)
from pyinfer.backends.torch.checkpoints import LoadReport
from pyinfer.backends.torch.model import TorchModel, _numpy_dtype
from pyinfer.backends.torch.specs import _declared, _export_specs, _input_names, schema_specs
from pyinfer.errors import InvalidArgumentError, ModelLoadError

logger = logging.getLogger(__name__)


_FREEZE_RTOL = 1e-3
_FREEZE_ATOL = 1e-4


def _build(
    torch: ModuleType,
    module: Any,
    *,
    fmt: ModelFormat,
    device: Device,
    tdev: Any,
    path: Path | None,
    name: str,
    opts: Mapping[str, Any],
    report: LoadReport | None = None,
    ema_available: bool = False,
) -> TorchModel:
    scripted = isinstance(module, torch.jit.ScriptModule)
    program = getattr(module, "_pyinfer_program", None)
    module = module.to(tdev)
    if program is None:
        module.eval()  # exported graphs have their mode baked in and refuse eval()
    for param in module.parameters():  # ScriptModules refuse module.requires_grad_()
        param.requires_grad_(False)
    count, nbytes = _sizes(module)

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    scalars: dict[str, TensorSpec] = {}
    if program is not None:
        specs, outputs, keyword = _export_specs(program, module)
        inputs = _declared(specs, opts, path)
    else:
        names, keyword = _input_names(module, scripted, opts, path)
        scalars = schema_specs(module) if scripted else {}
        inputs = _declared([scalars.get(n, TensorSpec(n, None)) for n in names], opts, path)
        outputs = ()

    has_conv = _has_conv2d(torch, module, program)
    channels_last = opts.get("channels_last")
    if channels_last is None:
        channels_last = has_conv and not device.is_cuda
    options: dict[str, Any] = {
        k: v for k, v in opts.items() if k not in {"architecture", "architecture_kwargs"}
    }
    if "architecture" in opts:
        options["architecture"] = _describe_arch(opts["architecture"])
    if opts.get("architecture_kwargs"):
        options["architecture_kwargs"] = dict(opts["architecture_kwargs"])
    options.update(
        strict=opts.get("strict", True),
        trust_code=opts.get("trust_code", False),
        channels_last=bool(channels_last),
        num_threads=int(torch.get_num_threads()),
        inference_mode=True,
    )
    if report is not None:
        options["load_report"] = report.to_dict()
        options["use_ema"] = bool(opts.get("use_ema", False))
        options["ema_available"] = ema_available
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    model = TorchModel(
        module,
        torch_mod=torch,
        name=name,
        format=fmt,
        device=device,
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=count,
        parameter_bytes=nbytes,
        options=options,
        keyword_inputs=keyword,
        scalar_inputs=[
            n for n, s in scalars.items() if n in {i.name for i in inputs} and s.shape == ()
        ],
        load_report=report,
    )
    example = _example(model)
    reference = None
    need_outputs = not model.outputs
    if example is not None and (need_outputs or scripted):
        try:
            reference = _run_example(model, example, path)
        except ModelLoadError as exc:
            if not any(s.shape == () and s.dtype.kind in "iub" for s in model.inputs):
                raise
            # A scalar such as a sample rate may take only some values, which a random
            # example does not know: the outputs are read at the first real call instead.
            logger.info("%s; its outputs are read at its first call", exc)
            example = None
        if need_outputs and reference is not None:
            model.outputs = _observed_outputs(model, reference, path)
            model.inputs, model.outputs = with_batch_axes(model.inputs, model.outputs)
    if scripted:
        _freeze(torch, model, opts, example, reference)
    else:
        model.options["freeze"] = False
        model.options["optimize"] = False
    return model


def _describe_arch(arch: Any) -> str:
    if isinstance(arch, str):
        return arch
    if callable(arch) and hasattr(arch, "__qualname__"):
        return f"{getattr(arch, '__module__', '?')}.{arch.__qualname__}"
    return type(arch).__name__


def _sizes(module: Any) -> tuple[int, int]:
    seen: set[int] = set()
    count = 0
    nbytes = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            count += p.numel()
            nbytes += p.numel() * p.element_size()
    for b in module.buffers():
        if id(b) not in seen:
            seen.add(id(b))
            nbytes += b.numel() * b.element_size()
    return int(count), int(nbytes)


def _has_conv2d(torch: ModuleType, module: Any, program: Any) -> bool:
    if program is not None:
        return any(
            n.op == "call_function" and "conv2d" in str(n.target) for n in program.graph.nodes
        )
    for sub in module.modules():
        if isinstance(sub, torch.nn.Conv2d) or getattr(sub, "original_name", "") == "Conv2d":
            return True
    return False


def _example(model: TorchModel) -> dict[str, np.ndarray] | None:
    if not model.inputs or any(s.shape is None for s in model.inputs):
        return None
    try:
        return model.example_inputs(1)
    except InvalidArgumentError:
        return None  # a dynamic dimension besides the batch: nothing to run at load


def _run_example(model: TorchModel, example: Mapping[str, np.ndarray], path: Path | None) -> Any:
    try:
        return model.run_native(model.to_native(example))
    except Exception as exc:
        shapes = ", ".join(f"{s.name} {s.shape_text()} {s.dtype}" for s in model.inputs)
        raise ModelLoadError(
            f"running {path or model.name} on an example of the declared inputs ({shapes}) "
            f"failed: {type(exc).__name__}: {framework_cause(exc)}; check input_shapes and "
            "input_dtypes",
            path=path,
        ) from exc


def _observed_outputs(
    model: TorchModel,
    first: Mapping[str, Any],
    path: Path | None,
) -> tuple[TensorSpec, ...]:
    shapes = {n: tuple(t.shape) for n, t in first.items()}
    dynamic = model.has_dynamic_batch and all(s.shape for s in model.inputs)
    batch_axis: dict[str, int | None] = dict.fromkeys(shapes)
    if dynamic:
        twice = model.example_inputs(2)
        second = _run_example(model, twice, path)
        for n, shape in shapes.items():
            batch_axis[n] = _grown_axis(shape, tuple(second[n].shape))
    specs = []
    for n, t in first.items():
        dims: list[Dim] = list(shapes[n])
        found = batch_axis[n]
        if found is not None:
            dims[found] = "batch"
        specs.append(TensorSpec(n, tuple(dims), _numpy_dtype(t.dtype)))
    return tuple(specs)


def _grown_axis(at_one: tuple[int, ...], at_two: tuple[int, ...]) -> int | None:
    """The axis of an output that is 1 at batch 1 and 2 at batch 2: the output's batch.

    The one axis that grows so while the others stay (the first for most outputs, the second
    for a recurrent state ``(2, batch, 128)``); when several change, the first axis if it grows
    so; else ``None``.
    """
    if len(at_one) != len(at_two) or not at_one:
        return None
    grown = [i for i, (a, b) in enumerate(zip(at_one, at_two, strict=True)) if a != b]
    if len(grown) == 1 and at_one[grown[0]] == 1 and at_two[grown[0]] == 2:
        return grown[0]
    return 0 if at_one[0] == 1 and at_two[0] == 2 else None


def _freeze(
    torch: ModuleType,
    model: TorchModel,
    opts: Mapping[str, Any],
    example: Mapping[str, np.ndarray] | None,
    reference: Mapping[str, Any] | None,
) -> None:
    freeze = opts.get("freeze", True)
    optimize = bool(opts.get("optimize", True)) and freeze
    model.options["freeze"] = False
    model.options["optimize"] = False
    if not freeze:
        return
    plain = model.module
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            fast = torch.jit.freeze(plain)
            if optimize:
                fast = torch.jit.optimize_for_inference(fast)
        model.module = fast
        if example is not None and reference is not None:
            got = model.run_native(model.to_native(example))
            _check_close(torch, reference, got)
    except Exception as exc:
        model.module = plain
        model.options["freeze_error"] = f"{type(exc).__name__}: {framework_cause(exc)}"
        logger.warning(
            "torch.jit.freeze%s failed for %s, running it unfrozen: %s",
            " + optimize_for_inference" if optimize else "",
            model.path or model.name,
            model.options["freeze_error"],
        )
        return
    model.options["freeze"] = True
    model.options["optimize"] = optimize
    model.options["freeze_verified"] = example is not None


def _check_close(torch: ModuleType, expected: Mapping[str, Any], got: Mapping[str, Any]) -> None:
    for name, ref in expected.items():
        out = got[name]
        if out.shape != ref.shape:
            raise ValueError(f"output {name!r} changed shape {tuple(ref.shape)} -> {out.shape}")
        if ref.is_floating_point():
            scale = max(1.0, float(ref.abs().max()))
            if not torch.allclose(
                out.float(),
                ref.float(),
                rtol=_FREEZE_RTOL,
                atol=_FREEZE_ATOL * scale,
                equal_nan=True,  # NaN weights give NaN outputs, frozen or not
            ):
                diff = float((out.float() - ref.float()).abs().max())
                raise ValueError(
                    f"output {name!r} differs by {diff:.3g} from the unfrozen module's"
                )
        elif not torch.equal(out, ref):
            raise ValueError(f"output {name!r} differs from the unfrozen module's")
