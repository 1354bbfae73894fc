"""The ONNX backend's entry point: :func:`load` a file into an :class:`OnnxModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.backends.base import Device, ModelFormat, check_options
from pyinfer.backends.onnx.model import OnnxModel
from pyinfer.backends.onnx.proto import (
    _check_external_data,
    _check_external_entries,
    _parameter_sizes,
    _read_proto,
)
from pyinfer.backends.onnx.session import (
    _check_obtained,
    _create_session,
    _cuda_stream,
    _device_id,
    _requested_providers,
    _session_options,
)
from pyinfer.backends.onnx.settings import _GPU_PROVIDERS, CUDA_PROVIDER, KNOWN_OPTIONS, _Settings
from pyinfer.backends.onnx.specs import _fix_shapes, _named_dim_overrides, _spec
from pyinfer.errors import InvalidArgumentError, ModelNotFoundError


def load(path: Path, fmt: ModelFormat, device: Device, *, name: str, **options: Any) -> OnnxModel:
    """Loads an ONNX model into an ONNX Runtime session.

    Args:
        path: The ``.onnx`` file; external data files are read from its folder.
        fmt: Must be :attr:`ModelFormat.ONNX`.
        device: Where to run: the CPU, or ``cuda:N``.
        name: Name for reports.
        **options: ``providers`` (a list of provider names or ``(name, options)`` pairs, which
            overrides the device's choice), ``provider_options`` (provider name -> dict of
            options, merged over pyinfer's), ``allow_fallback`` (default ``False``: a GPU
            provider that is unavailable or dropped by the session is an error; ``True`` runs
            on what the session got, with a logged warning, and records it as ``fallback``),
            ``intra_op_threads`` (default: physical cores; 0 leaves ONNX Runtime's default),
            ``inter_op_threads`` (default 0: ONNX Runtime's), ``graph_optimization``
            (``"all"`` by default, ``"extended"``, ``"basic"``, ``"disable"``),
            ``execution_mode`` (``"sequential"`` by default, or ``"parallel"``),
            ``input_shapes`` (input name -> concrete shape: fixes the input's dynamic
            dimensions; named ones are also fixed inside ONNX Runtime, which lets it optimise
            for them), ``stream`` (CUDA only: the stream to run on, an int handle or an object
            with ``cuda_stream`` such as a ``torch.cuda.Stream``).

    Returns:
        The model, with every setting applied recorded in ``options``.

    Raises:
        InvalidArgumentError: On an unknown option or an invalid option value.
        ModelNotFoundError: If the path is missing or a folder.
        CorruptModelError: If the file is not a valid ONNX model (truncated, damaged) or its
            external data files are missing or short.
        ModelLoadError: If ONNX Runtime cannot run the model (unsupported operator or opset).
        CudaUnavailableError: If CUDA was asked for but ONNX Runtime cannot use it, and
            ``allow_fallback`` is false.
        OutOfMemoryError: If ONNX Runtime could not allocate the model's memory.
        FrameworkNotInstalledError: If onnxruntime is not installed.
    """
    check_options(options, KNOWN_OPTIONS, loader="ONNX", path=path)
    if fmt is not ModelFormat.ONNX:
        raise InvalidArgumentError(
            f"the ONNX Runtime backend loads ONNX models, not {fmt.value} ({path})"
        )
    settings = _Settings.from_options(path, options)
    if path.is_dir():
        raise ModelNotFoundError(
            f"{path} is a folder; pass the .onnx file inside it (its external data files are "
            "found next to it)",
            path=path,
        )
    ort = frameworks.import_onnxruntime()

    proto = _read_proto(path)
    if proto is not None:
        _check_external_entries(path, proto)
        _check_external_data(path, proto)
    parameter_count, parameter_bytes = _parameter_sizes(proto)

    requested, fallback = _requested_providers(ort, path, device, settings)
    session_options = _session_options(ort, settings)
    stream, stream_handle = None, None
    if any(p == CUDA_PROVIDER for p, _ in requested):
        stream, stream_handle = _cuda_stream(settings.stream, device)
        if stream_handle is not None:
            cuda_opts = dict(requested)[CUDA_PROVIDER]
            cuda_opts.setdefault("user_compute_stream", str(stream_handle))
            cuda_opts.setdefault("has_user_compute_stream", "1")
    session = _create_session(ort, path, session_options, requested)
    inputs = tuple(_spec(arg, "input") for arg in session.get_inputs())
    if settings.input_shapes:
        fixed = {s.name: s for s in _fix_shapes(path, inputs, settings.input_shapes)}
        overrides = _named_dim_overrides(path, inputs, settings.input_shapes)
        if overrides:
            # Fixed inside ONNX Runtime too, so it plans memory and kernels for these sizes.
            for dim, size in overrides.items():
                session_options.add_free_dimension_override_by_name(dim, size)
            session = _create_session(ort, path, session_options, requested)
        inputs = tuple(
            fixed[arg.name] if arg.name in settings.input_shapes else _spec(arg, "input")
            for arg in session.get_inputs()
        )
    outputs = tuple(_spec(arg, "output") for arg in session.get_outputs())
    obtained = list(session.get_providers())
    fallback = _check_obtained(path, requested, obtained, settings.allow_fallback) or fallback

    on_gpu = any(p in _GPU_PROVIDERS for p in obtained)
    run_device = Device("cuda", _device_id(requested, device)) if on_gpu else Device("cpu")
    if not on_gpu:
        stream, stream_handle = None, None

    recorded: dict[str, Any] = {
        "providers": obtained,
        "requested_providers": [p for p, _ in requested],
        "provider_options": {p: dict(o) for p, o in requested if o},
        "allow_fallback": settings.allow_fallback,
        "intra_op_threads": settings.intra_op_threads,
        "inter_op_threads": settings.inter_op_threads,
        "graph_optimization": settings.graph_optimization,
        "execution_mode": settings.execution_mode,
        "onnxruntime_version": str(ort.__version__),
    }
    if settings.input_shapes:
        recorded["input_shapes"] = {k: list(v) for k, v in settings.input_shapes.items()}
    if fallback:
        recorded["fallback"] = fallback
        recorded["requested_device"] = str(device)
    if stream_handle is not None:
        recorded["stream"] = stream_handle
    return OnnxModel(
        session=session,
        ort=ort,
        stream=stream,
        stream_handle=stream_handle,
        name=name,
        path=path,
        device=run_device,
        inputs=inputs,
        outputs=outputs,
        parameter_count=parameter_count,
        parameter_bytes=parameter_bytes,
        options=recorded,
    )
