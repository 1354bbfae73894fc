"""Creating the ONNX Runtime session.

Providers, session options, the CUDA stream, and the checks that the session got what was asked
for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.backends.base import Device
from pyinfer.backends.onnx.model import _first_line, _is_ort_error
from pyinfer.backends.onnx.settings import (
    _GPU_PROVIDERS,
    CPU_PROVIDER,
    CUDA_PROVIDER,
    EXECUTION_MODES,
    GRAPH_OPTIMIZATION_LEVELS,
    _Settings,
)
from pyinfer.errors import (
    CorruptModelError,
    CudaUnavailableError,
    DeviceError,
    FrameworkNotInstalledError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemoryError,
    as_out_of_memory,
)

logger = logging.getLogger(__name__)


_UNSUPPORTED_PATTERNS = ("opset", "not a registered", "no op reg", "not implemented")


_GPU_INSTALL_HINT = (
    "install the GPU build with pip install 'pyinfer-toolkit[onnx-gpu]' "
    "(which brings onnxruntime-gpu); "
    "the CPU package onnxruntime and onnxruntime-gpu must never both be installed, they share "
    "one module: pip uninstall onnxruntime onnxruntime-gpu first"
)


def _requested_providers(
    ort: ModuleType, path: Path, device: Device, settings: _Settings
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The providers to ask for after the availability check, and the fallback made, if any."""
    if settings.providers is not None:
        requested = [(p, dict(o)) for p, o in settings.providers]
    elif device.is_cuda:
        requested = [(CUDA_PROVIDER, {"device_id": device.index}), (CPU_PROVIDER, {})]
    else:
        requested = [(CPU_PROVIDER, {})]
    for provider, opts in requested:
        opts.update(settings.provider_options.get(provider, {}))
    available = list(ort.get_available_providers())
    missing = [p for p, _ in requested if p not in available]
    if missing:
        problem = (
            f"ONNX Runtime {ort.__version__} here cannot use {', '.join(missing)} for {path} "
            f"(available: {', '.join(available)})"
        )
        wants_gpu = any(p in _GPU_PROVIDERS for p in missing)
        fix = f"; {_GPU_INSTALL_HINT}" if wants_gpu else ""
        if not settings.allow_fallback:
            cls = CudaUnavailableError if wants_gpu else DeviceError
            raise cls(f"{problem}{fix}, or pass allow_fallback=True to run on the CPU instead")
        logger.warning("%s; falling back to the CPU (allow_fallback=True)%s", problem, fix)
        requested = [(p, o) for p, o in requested if p in available]
        if not any(p == CPU_PROVIDER for p, _ in requested):
            requested.append((CPU_PROVIDER, {}))
        return requested, problem
    return requested, None


def _session_options(ort: ModuleType, settings: _Settings) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.intra_op_threads
    so.inter_op_num_threads = settings.inter_op_threads
    so.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    )
    so.execution_mode = getattr(ort.ExecutionMode, EXECUTION_MODES[settings.execution_mode])
    return so


def _cuda_stream(stream: Any, device: Device) -> tuple[Any, int | None]:
    """The stream object to keep alive and its handle: the caller's, or a new torch one."""
    if stream is not None:
        handle = stream if isinstance(stream, int) else int(stream.cuda_stream)
        return stream, handle
    try:
        torch = frameworks.import_torch()
    except FrameworkNotInstalledError:
        logger.info("torch is not installed: ONNX Runtime runs on its own CUDA stream")
        return None, None
    if not torch.cuda.is_available():
        logger.info("torch cannot use CUDA here: ONNX Runtime runs on its own CUDA stream")
        return None, None
    created = torch.cuda.Stream(device=device.index)  # pragma: no cover - needs a GPU
    return created, int(created.cuda_stream)  # pragma: no cover - needs a GPU


def _create_session(
    ort: ModuleType, path: Path, session_options: Any, requested: list[tuple[str, dict[str, Any]]]
) -> Any:
    providers = [(p, {k: _option_text(v) for k, v in o.items()}) if o else p for p, o in requested]
    try:
        return ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
    except UnicodeDecodeError as exc:
        # ONNX Runtime quotes the file's names in its error messages; when those bytes are not
        # UTF-8 (damaged text), its message cannot become a Python string and this is all
        # that comes back.
        raise CorruptModelError(
            f"ONNX Runtime failed to load {path}, and its error message quotes bytes of the file "
            f"that are not UTF-8 text ({exc.reason} at byte {exc.start}): names or strings in "
            "the model are damaged; export or copy it again",
            path=path,
        ) from exc
    except Exception as exc:
        if not _is_ort_error(exc):
            raise
        raise _load_error(path, exc) from exc


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _load_error(path: Path, exc: BaseException) -> Exception:
    kind = type(exc).__name__
    message = _first_line(str(exc))
    lower = message.lower()
    if as_out_of_memory(exc) is not None:
        return OutOfMemoryError(
            f"ONNX Runtime ran out of memory loading {path}: {message}; free memory or use a "
            "smaller model"
        )
    if kind == "NoSuchFile":
        return ModelNotFoundError(f"ONNX Runtime cannot find {path}: {message}", path=path)
    if "external data" in lower or "external_data" in lower:
        return CorruptModelError(
            f"the external data of {path} cannot be read: {message}; keep the data files the "
            "model was saved with next to it (copy the whole folder)",
            path=path,
        )
    if kind == "InvalidProtobuf":
        return CorruptModelError(
            f"{path} is not a valid ONNX model: ONNX Runtime could not parse it ({message}); "
            "the file is probably truncated or damaged: export or copy it again",
            path=path,
        )
    if kind in {"InvalidGraph", "NotImplemented"} or any(p in lower for p in _UNSUPPORTED_PATTERNS):
        return ModelLoadError(
            f"ONNX Runtime cannot run {path}: {message}; the model uses an operator or opset "
            "this onnxruntime does not support: upgrade onnxruntime, or export the model "
            "again with a lower opset",
            path=path,
        )
    return CorruptModelError(
        f"ONNX Runtime failed to load {path}: {message}; check that the file is a complete "
        "ONNX model (export or copy it again)",
        path=path,
    )


def _check_obtained(
    path: Path,
    requested: list[tuple[str, dict[str, Any]]],
    obtained: list[str],
    allow_fallback: bool,
) -> str | None:
    """Fails (or warns) when the session dropped a provider it was asked for."""
    dropped = [p for p, _ in requested if p not in obtained]
    if not dropped:
        return None
    gpu_lost = any(p in _GPU_PROVIDERS for p in dropped)
    problem = (
        f"the ONNX Runtime session for {path} did not get {', '.join(dropped)}: it runs on "
        f"{', '.join(obtained)} (ONNX Runtime drops a provider whose libraries fail to load "
        "with only a log line; see the error onnxruntime logged above)"
    )
    fix = (
        "; onnxruntime-gpu needs the CUDA and cuDNN libraries of the CUDA version it was built "
        "for (CUDA 13 for current releases) where the loader finds them: install them (the "
        f"nvidia-*-cu13 wheels or the CUDA toolkit); {_GPU_INSTALL_HINT}"
        if gpu_lost
        else f"; install what {', '.join(dropped)} needs, or leave it out of providers"
    )
    if not allow_fallback:
        cls = CudaUnavailableError if gpu_lost else DeviceError
        raise cls(
            f"{problem}{fix}; or pass allow_fallback=True to accept running on "
            f"{', '.join(obtained)}"
        )
    logger.warning("%s; continuing there (allow_fallback=True)", problem)
    return problem


def _device_id(requested: list[tuple[str, dict[str, Any]]], device: Device) -> int:
    opts = dict(requested).get(CUDA_PROVIDER, {})
    try:
        return int(opts.get("device_id", device.index))
    except (TypeError, ValueError):
        return device.index
