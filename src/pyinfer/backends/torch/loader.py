"""The torch backend's entry points: :func:`load` a file, :func:`from_module` wrap a module."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.backends.base import Device, Model, ModelFormat
from pyinfer.backends.torch.build import _build
from pyinfer.backends.torch.checkpoints import (
    LoadReport,
    _load_safetensors,
    _module_from_object,
    is_safetensors_file,
)
from pyinfer.backends.torch.files import (
    _exported_module,
    _is_exported_program,
    _load_export,
    _load_pickled,
    _load_torchscript,
)
from pyinfer.backends.torch.options import _apply_threads, _check_options, _torch_device
from pyinfer.errors import InvalidArgumentError

logger = logging.getLogger(__name__)


def load(path: Path, fmt: ModelFormat, device: Device, *, name: str, **options: Any) -> Model:
    """Loads a torch model file, or a Hugging Face model folder (:mod:`.hf`).

    Args:
        path: The file, or a folder with ``config.json`` and safetensors or
            ``pytorch_model.bin`` weights.
        fmt: Its format: TorchScript, ``torch.save`` (zip or legacy), plain pickle or
            ``torch.export``.
        device: Where to run it.
        name: Name for reports.
        **options: See :data:`KNOWN_OPTIONS` and the module docstring: ``architecture``,
            ``architecture_kwargs``, ``strict`` (default ``True``), ``trust_code`` (default
            ``False``), ``use_ema`` (default ``False``), ``state_dict_key``, ``input_shapes``,
            ``input_dtypes``, ``channels_last`` (default: auto), ``freeze`` and ``optimize``
            (TorchScript, default ``True``), ``num_threads``.

    Returns:
        The model, in eval and inference mode on ``device``.

    Raises:
        InvalidArgumentError: On an unknown option or a bad option value.
        UntrustedModelError: If loading would run code from the file and ``trust_code`` is not
            set.
        CorruptModelError: If the file is damaged or truncated.
        ArchitectureError: If weights come without an architecture or do not fit it.
        DeviceError: If the device cannot be used (``CudaUnavailableError`` without CUDA).
    """
    if path.is_dir() and fmt is ModelFormat.PYTORCH:
        from pyinfer.backends.torch.hf import load_folder

        return load_folder(path, device, name=name, **options)
    opts = _check_options(options)
    torch = frameworks.import_torch()
    tdev = _torch_device(torch, device)
    _apply_threads(torch, opts)
    report: LoadReport | None = None
    ema_available = False
    if fmt is ModelFormat.TORCHSCRIPT:
        module = _load_torchscript(torch, path, tdev)
    elif fmt is ModelFormat.TORCH_EXPORT:
        module = _load_export(torch, path, tdev, trust=bool(opts.get("trust_code", False)))
    elif fmt is ModelFormat.PYTORCH and is_safetensors_file(path):
        state = _load_safetensors(path, tdev)
        module, report, ema_available = _module_from_object(torch, state, path, opts)
    elif fmt in {ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY, ModelFormat.PICKLE}:
        obj = _load_pickled(torch, path, fmt, tdev, trust=bool(opts.get("trust_code", False)))
        module, report, ema_available = _module_from_object(torch, obj, path, opts)
    else:
        raise InvalidArgumentError(f"the torch backend cannot load {fmt.value} models ({path})")
    if fmt in {ModelFormat.TORCHSCRIPT, ModelFormat.TORCH_EXPORT} and "architecture" in opts:
        logger.warning(
            "%s is a %s model, which carries its own architecture; ignoring architecture=%r",
            path,
            fmt.value,
            opts["architecture"],
        )
    return _build(
        torch,
        module,
        fmt=fmt,
        device=device,
        tdev=tdev,
        path=path,
        name=name,
        opts=opts,
        report=report,
        ema_available=ema_available,
    )


def from_module(module: Any, device: Device, *, name: str, **options: Any) -> Model:
    """Wraps an in-memory module as a :class:`TorchModel`.

    The module is moved to ``device`` and switched to eval mode in place. A ``ScriptModule`` is
    treated like a loaded TorchScript file (frozen by default, on a copy), an exported
    ``torch.export.ExportedProgram`` like a ``.pt2`` file.

    Args:
        module: An ``nn.Module``, ``ScriptModule`` or ``ExportedProgram``.
        device: Where to run it.
        name: Name for reports.
        **options: As for :func:`load`, less the checkpoint options (``architecture``, ...).

    Returns:
        The model.

    Raises:
        InvalidArgumentError: If ``module`` is not a torch module, or on a bad option.
        DeviceError: If the device cannot be used.
    """
    opts = _check_options(options)
    torch = frameworks.import_torch()
    tdev = _torch_device(torch, device)
    _apply_threads(torch, opts)
    fmt = ModelFormat.PYTORCH
    if isinstance(module, torch.jit.ScriptModule):
        fmt = ModelFormat.TORCHSCRIPT
        module = module.to(tdev)
    elif _is_exported_program(module):
        fmt = ModelFormat.TORCH_EXPORT
        module = _exported_module(module, tdev)
    elif isinstance(module, torch.nn.Module):
        module = module.to(tdev)
    else:
        raise InvalidArgumentError(
            f"from_module takes a torch.nn.Module, ScriptModule or ExportedProgram, not "
            f"{type(module).__name__}"
        )
    return _build(torch, module, fmt=fmt, device=device, tdev=tdev, path=None, name=name, opts=opts)
