"""ONNX models run by ONNX Runtime.

:func:`load` turns an ``.onnx`` file (with its external data files beside it, where it has
them) into an :class:`OnnxModel`: an ``onnxruntime.InferenceSession`` behind the
:class:`~pyinfer.backends.base.Model` interface.

Defaults, chosen for speed and for honest measurements:

* graph optimisation level ``ORT_ENABLE_ALL``;
* intra-op threads = the physical cores this process may use (ONNX Runtime's own default counts
  hyper-threads and was measured slower: 55 ms against 47 ms for ResNet50 at batch 1 on a
  2-core machine, see ``benchmarks/bench_onnx_threads.py``);
* providers from the device: ``CPUExecutionProvider`` on the CPU; on ``cuda:N``,
  ``CUDAExecutionProvider`` for device ``N`` followed by the CPU provider (for the few operators
  CUDA lacks). Asking for CUDA where ONNX Runtime cannot use it is an error unless the caller
  passes ``allow_fallback=True``, and so is a session that silently dropped the CUDA provider
  (``onnxruntime-gpu`` without its CUDA libraries does that with a mere log line): the providers
  the session actually got are checked after it is created, so nobody profiles the CPU while
  believing it is the GPU.

On CUDA the session runs on a stream pyinfer knows (``user_compute_stream``): the caller's
(option ``stream``) or, where torch with CUDA is importable, a new ``torch.cuda.Stream``. Its
handle is :attr:`OnnxModel.stream_handle`, for timing with CUDA events. Without torch the
session keeps ONNX Runtime's own stream and the handle is ``None``.

Everything applied is recorded in :attr:`OnnxModel.options`.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends import frameworks
from pyinfer.backends.base import (
    Device,
    Dim,
    Model,
    ModelFormat,
    TensorSpec,
    check_options,
)
from pyinfer.errors import (
    CorruptModelError,
    CudaUnavailableError,
    DeviceError,
    FrameworkNotInstalledError,
    InvalidArgumentError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemoryError,
    UntrustedModelError,
    as_out_of_memory,
)

__all__ = ["KNOWN_OPTIONS", "OnnxModel", "load"]

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
#: Providers that run on an NVIDIA GPU: getting none of them when one was asked for is a
#: fallback to the CPU.
_GPU_PROVIDERS = frozenset({CUDA_PROVIDER, "TensorrtExecutionProvider"})

#: ``graph_optimization`` values -> ``onnxruntime.GraphOptimizationLevel`` member names.
GRAPH_OPTIMIZATION_LEVELS: dict[str, str] = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disable": "ORT_DISABLE_ALL",
}
#: ``execution_mode`` values -> ``onnxruntime.ExecutionMode`` member names.
EXECUTION_MODES: dict[str, str] = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}

#: The options :func:`load` accepts (``load_model(path, **options)``).
KNOWN_OPTIONS: tuple[str, ...] = (
    "allow_fallback",
    "execution_mode",
    "graph_optimization",
    "input_shapes",
    "inter_op_threads",
    "intra_op_threads",
    "provider_options",
    "providers",
    "stream",
    # Accepted so that --trust-code works on every command: an ONNX file holds no code
    # (ONNX Runtime runs its own kernels), so it changes nothing.
    "trust_code",
)

#: ONNX Runtime's type strings -> numpy dtypes. Types numpy lacks (bfloat16, float8, int4)
#: are reported as ``object`` with a logged warning.
_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(object),
    "tensor(complex64)": np.dtype(np.complex64),
    "tensor(complex128)": np.dtype(np.complex128),
}

#: Bits per element of ONNX tensor types narrower than a byte (TensorProto names).
_SUB_BYTE_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}

_UNSUPPORTED_PATTERNS = ("opset", "not a registered", "no op reg", "not implemented")
_INPUT_NAME_PATTERN = re.compile(r"for input: ([^\s]+)")

_GPU_INSTALL_HINT = (
    "install the GPU build with pip install 'pyinfer[onnx-gpu]' (which brings onnxruntime-gpu); "
    "the CPU package onnxruntime and onnxruntime-gpu must never both be installed, they share "
    "one module: pip uninstall onnxruntime onnxruntime-gpu first"
)


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


class OnnxModel(Model):
    """An ONNX Runtime session behind the :class:`~pyinfer.backends.base.Model` interface.

    ``model(inputs)`` runs ``session.run`` on host arrays. :meth:`run_native` takes numpy arrays
    or ``onnxruntime.OrtValue`` (as made by :meth:`to_native`: on the GPU for a CUDA model) and,
    when any input is an ``OrtValue`` or the model runs on CUDA, runs through an IO binding with
    the outputs left on the model's device as ``OrtValue``.
    """

    def __init__(
        self,
        *,
        session: Any,
        ort: ModuleType,
        stream: Any,
        stream_handle: int | None,
        name: str,
        path: Path,
        device: Device,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        parameter_count: int,
        parameter_bytes: int,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__(
            name=name,
            format=ModelFormat.ONNX,
            framework="onnxruntime",
            device=device,
            path=path,
            inputs=inputs,
            outputs=outputs,
            parameter_count=parameter_count,
            parameter_bytes=parameter_bytes,
            options=options,
        )
        self._session: Any = session
        self._ort = ort
        self._stream = stream  # keeps a stream pyinfer created alive as long as the session
        self._stream_handle = stream_handle
        self._last_binding: Any = None

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (for what pyinfer does not wrap).

        Raises:
            InvalidArgumentError: If the model was closed.
        """
        if self._session is None:
            raise InvalidArgumentError(f"model '{self.name}' was closed; load it again")
        return self._session

    @property
    def stream_handle(self) -> int | None:
        """The CUDA stream handle given to ONNX Runtime, or ``None`` (CPU, or ORT's own)."""
        return self._stream_handle

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Host arrays as-is on the CPU; ``OrtValue`` copies on the GPU for a CUDA model."""
        if not self.device.is_cuda:
            return dict(inputs)
        make = self._ort.OrtValue.ortvalue_from_numpy
        return {
            k: make(np.ascontiguousarray(v), "cuda", self.device.index) for k, v in inputs.items()
        }

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the session; see the class docstring for what goes in and comes out.

        Raises:
            InvalidInputError: If ONNX Runtime rejects the inputs (a shape that does not fit,
                dynamic dimensions that disagree between inputs); the message names them.
            OutOfMemoryError: If ONNX Runtime could not allocate memory for the run.
        """
        session = self.session
        try:
            if self.device.is_cuda or not all(isinstance(v, np.ndarray) for v in inputs.values()):
                return self._run_bound(session, inputs)
            names = self.output_names()
            values = session.run(names, dict(inputs))
        except Exception as exc:
            if not _is_ort_error(exc):
                raise
            raise self._run_error(exc, inputs) from exc
        return dict(zip(names, values, strict=True))

    def _run_bound(self, session: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
        binding = session.io_binding()
        for key, value in inputs.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(key, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(key, value)
        where = "cuda" if self.device.is_cuda else "cpu"
        names = self.output_names()
        for key in names:
            binding.bind_output(key, where, self.device.index)
        session.run_with_iobinding(binding)
        self._last_binding = binding
        return dict(zip(names, binding.get_outputs(), strict=True))

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copies ``OrtValue`` outputs to the host; numpy outputs pass through."""
        out: dict[str, np.ndarray] = {}
        for key, value in outputs.items():
            out[key] = value.numpy() if isinstance(value, self._ort.OrtValue) else np.asarray(value)
        return out

    def synchronize(self) -> None:
        """Waits for the model's GPU work: its stream, or the last IO binding's outputs."""
        if not self.device.is_cuda:
            return
        if self._stream is not None and hasattr(self._stream, "synchronize"):
            self._stream.synchronize()
        elif self._last_binding is not None:
            self._last_binding.synchronize_outputs()

    def close(self) -> None:
        """Drops the session (and its memory, once no output refers to it)."""
        self._session = None
        self._last_binding = None
        self._stream = None

    def _run_error(self, exc: BaseException, inputs: Mapping[str, Any]) -> Exception:
        message = str(exc).strip()
        if as_out_of_memory(exc) is not None:
            return OutOfMemoryError(
                f"ONNX Runtime ran out of memory running model '{self.name}' on {self.device} "
                f"with inputs {_shapes_text(inputs)}: {message}; use a smaller batch"
            )
        match = _INPUT_NAME_PATTERN.search(message)
        if match and type(exc).__name__ == "InvalidArgument":
            culprit = match.group(1)
            spec = next((s for s in self.inputs if s.name == culprit), None)
            expected = f" (expected {spec.shape_text()})" if spec is not None else ""
            return InvalidInputError(
                f"input '{culprit}' of model '{self.name}' was rejected by ONNX Runtime"
                f"{expected}, inputs given {_shapes_text(inputs)}: {_first_line(message)}"
            )
        shared = _shared_dims(self.inputs)
        hint = (
            f"; inputs sharing a dynamic dimension ({', '.join(shared)}) must agree on its size"
            if shared
            else "; check the input shapes against the model's inputs"
        )
        return InvalidInputError(
            f"model '{self.name}' failed on inputs {_shapes_text(inputs)} (it takes "
            f"{', '.join(str(s) for s in self.inputs)}): {_first_line(message)}{hint}"
        )


# -- options -------------------------------------------------------------------------------


class _Settings:
    """The validated options of one load."""

    def __init__(self) -> None:
        self.providers: list[tuple[str, dict[str, Any]]] | None = None
        self.provider_options: dict[str, dict[str, Any]] = {}
        self.allow_fallback = False
        self.intra_op_threads = frameworks.physical_cores()
        self.inter_op_threads = 0
        self.graph_optimization = "all"
        self.execution_mode = "sequential"
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.stream: Any = None

    @classmethod
    def from_options(cls, path: Path, options: Mapping[str, Any]) -> _Settings:
        s = cls()
        if options.get("providers") is not None:
            s.providers = _parse_providers(path, options["providers"])
        provider_options = options.get("provider_options")
        if provider_options is not None:
            if not isinstance(provider_options, Mapping) or not all(
                isinstance(k, str) and isinstance(v, Mapping) for k, v in provider_options.items()
            ):
                raise InvalidArgumentError(
                    "provider_options must map a provider name to a dict of its options, such "
                    "as {'CUDAExecutionProvider': {'cudnn_conv_algo_search': 'HEURISTIC'}}"
                )
            s.provider_options = {k: dict(v) for k, v in provider_options.items()}
        fallback = options.get("allow_fallback", False)
        if not isinstance(fallback, bool):
            raise InvalidArgumentError(f"allow_fallback must be True or False, not {fallback!r}")
        s.allow_fallback = fallback
        if options.get("intra_op_threads") is not None:
            s.intra_op_threads = _threads("intra_op_threads", options["intra_op_threads"])
        if options.get("inter_op_threads") is not None:
            s.inter_op_threads = _threads("inter_op_threads", options["inter_op_threads"])
        s.graph_optimization = _choice(
            "graph_optimization",
            options.get("graph_optimization", "all"),
            GRAPH_OPTIMIZATION_LEVELS,
        )
        s.execution_mode = _choice(
            "execution_mode", options.get("execution_mode", "sequential"), EXECUTION_MODES
        )
        if options.get("input_shapes") is not None:
            s.input_shapes = _parse_input_shapes(options["input_shapes"])
        stream = options.get("stream")
        if stream is not None and not (
            (isinstance(stream, int) and not isinstance(stream, bool))
            or isinstance(getattr(stream, "cuda_stream", None), int)
        ):
            raise InvalidArgumentError(
                "stream must be a CUDA stream handle (an int) or an object with a cuda_stream "
                f"attribute such as torch.cuda.Stream, not {type(stream).__name__}"
            )
        s.stream = stream
        return s


def _parse_providers(path: Path, providers: Any) -> list[tuple[str, dict[str, Any]]]:
    usage = (
        "providers must be a list of provider names or (name, options) pairs, such as "
        '["CUDAExecutionProvider", "CPUExecutionProvider"]'
    )
    if isinstance(providers, (str, bytes)) or not isinstance(providers, Sequence) or not providers:
        raise InvalidArgumentError(f"{usage}, not {providers!r} ({path})")
    out: list[tuple[str, dict[str, Any]]] = []
    for item in providers:
        if isinstance(item, str):
            out.append((item, {}))
        elif (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Mapping)
        ):
            out.append((item[0], dict(item[1])))
        else:
            raise InvalidArgumentError(f"{usage}; {item!r} is neither ({path})")
    return out


def _threads(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(
            f"{option} must be a whole number >= 0 (0: ONNX Runtime's default), not {value!r}"
        )
    return value


def _choice(option: str, value: Any, choices: Mapping[str, str]) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or text not in choices:
        raise InvalidArgumentError(
            f"{option} must be one of {', '.join(repr(c) for c in choices)}, not {value!r}"
        )
    return text


def _parse_input_shapes(value: Any) -> dict[str, tuple[int, ...]]:
    usage = "input_shapes must map input names to concrete shapes, such as {'x': (1, 3, 224, 224)}"
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{usage}, not {type(value).__name__}")
    out: dict[str, tuple[int, ...]] = {}
    for key, shape in value.items():
        if (
            not isinstance(key, str)
            or not isinstance(shape, Sequence)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise InvalidArgumentError(f"{usage}; {key!r}: {shape!r} is not one")
        out[key] = tuple(shape)
    return out


# -- providers and session -----------------------------------------------------------------


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


def _is_ort_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of ONNX Runtime's exception classes (they share no base)."""
    return type(exc).__module__.startswith("onnxruntime")


# -- specs ---------------------------------------------------------------------------------


def _spec(arg: Any, role: str) -> TensorSpec:
    type_text = str(arg.type)
    dtype = _ORT_DTYPES.get(type_text)
    if dtype is None:
        logger.warning(
            "%s '%s' has type %s, which numpy lacks: it is described as dtype object, and only "
            "run_native with OrtValue tensors can feed it",
            role,
            arg.name,
            type_text,
        )
        dtype = np.dtype(object)
    raw = arg.shape
    shape: tuple[Dim, ...] | None = None
    if isinstance(raw, (list, tuple)):
        shape = tuple(_dim(d) for d in raw)
    return TensorSpec(str(arg.name), shape, dtype)


def _dim(value: Any) -> Dim:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value:
        return value
    return None


def _fix_shapes(
    path: Path, specs: tuple[TensorSpec, ...], shapes: Mapping[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    by_name = {s.name: s for s in specs}
    unknown = [k for k in shapes if k not in by_name]
    if unknown:
        raise InvalidArgumentError(
            f"input_shapes names {', '.join(repr(k) for k in unknown)}, which {path} does not "
            f"take; its inputs are {', '.join(repr(s.name) for s in specs)}"
        )
    out = []
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is not None and not spec.accepts_shape(shape):
            raise InvalidArgumentError(
                f"input_shapes gives input '{spec.name}' of {path} the shape {shape}, which "
                f"does not fit its declared shape {spec.shape_text()}"
            )
        out.append(spec if shape is None else TensorSpec(spec.name, shape, spec.dtype))
    return tuple(out)


def _named_dim_overrides(
    path: Path, specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, int]:
    """Named dynamic dimension -> size, from ``input_shapes``; conflicting sizes are an error."""
    sizes: dict[str, int] = {}
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is None or spec.shape is None:
            continue
        for dim, size in zip(spec.shape, shape, strict=True):
            if isinstance(dim, str) and sizes.setdefault(dim, size) != size:
                raise InvalidArgumentError(
                    f"input_shapes gives the dynamic dimension '{dim}' of {path} two sizes, "
                    f"{sizes[dim]} and {size}; inputs sharing it must agree"
                )
    return sizes


# -- the ONNX protobuf: parameters and external data ---------------------------------------


def _read_proto(path: Path) -> Any:
    """The ``ModelProto`` without its external data, or ``None`` (no onnx package, unparsable).

    An unparsable file is left to ONNX Runtime, whose error is mapped by :func:`_load_error`.
    """
    try:
        onnx = frameworks.import_onnx()
    except FrameworkNotInstalledError:
        logger.info(
            "the onnx package is not installed: parameter count and bytes of %s are reported "
            "as 0 (pip install 'pyinfer[onnx]' brings it)",
            path,
        )
        return None
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception:  # any parse failure: ONNX Runtime reports it below
        logger.debug("onnx could not parse %s", path, exc_info=True)
        return None


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph of its control-flow nodes (If, Loop, Scan), recursively."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _initializers(proto: Any) -> Iterator[Any]:
    for graph in _graphs(proto.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values


def external_data_files(path: Path) -> list[Path]:
    """The external data files an ``.onnx`` model reads its weights from, in first-use order.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The files named by its initializers that exist beside it (none when the weights are
        inside the file, or the onnx package is not installed to read the graph).
    """
    proto = _read_proto(path)
    if proto is None:
        return []
    found: list[Path] = []
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        if not location or _outside(path.parent, location):
            continue  # never looked at: load() refuses such a model
        target = path.parent / location
        if target.is_file() and target not in found:
            found.append(target)
    return found


def _outside(folder: Path, location: str) -> bool:
    """Whether an external data ``location`` names a file outside the model's folder.

    Absolute paths (POSIX or Windows), ``..`` components and links whose target lies outside
    the folder all count; ONNX Runtime refuses the same, and pyinfer checks before it so that
    not even a file's size is read.
    """
    if location.startswith(("/", "\\")) or PureWindowsPath(location).drive:
        return True
    if ".." in re.split(r"[\\/]", location):
        return True
    try:
        return not (folder / location).resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        return True


def _check_external_data(path: Path, proto: Any) -> None:
    """Raises if an external data file of the model is outside its folder, missing or short."""
    folder = path.parent
    missing: list[str] = []
    short: list[str] = []
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        if location and _outside(folder, location):
            raise UntrustedModelError(
                f"{path}: initializer '{tensor.name}' keeps its data in {location!r}, which is "
                f"outside the model's folder {folder}; an ONNX model may read external data "
                "only from files in its own folder (reading another file would copy it into "
                "the model's weights). Put the data file next to the model and save the model "
                "with a relative location (onnx.save(..., location='model.onnx.data'))",
                path=path,
            )
        target = folder / location
        if not location or not target.is_file():
            if location not in missing:
                missing.append(location)
            continue
        end = int(entries.get("offset", 0) or 0) + int(entries.get("length", 0) or 0)
        if end > target.stat().st_size and location not in short:
            short.append(location)
    if missing:
        raise CorruptModelError(
            f"{path} keeps its weights in external data file(s) that are missing: "
            f"{', '.join(str(folder / m) for m in missing)}; copy them next to the model "
            "(a model saved with external data is the .onnx file plus these files)",
            path=path,
        )
    if short:
        raise CorruptModelError(
            f"external data file(s) {', '.join(str(folder / s) for s in short)} of {path} are "
            "shorter than the model says: truncated; copy them again",
            path=path,
        )


def _check_external_entries(path: Path, proto: Any) -> None:
    """Raises if an external data entry is not text, or an offset or length not a number.

    Damaged bytes there get past the protobuf parser (it hands invalid UTF-8 over as bytes).
    """
    for tensor in _initializers(proto):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        name = tensor.name if isinstance(tensor.name, str) else repr(tensor.name)
        for entry in tensor.external_data:
            key, value = entry.key, entry.value
            if not isinstance(key, str) or not isinstance(value, str):
                problem = f"entry {key!r} = {value!r} is not UTF-8 text"
            elif (
                key in ("offset", "length") and value and not (value.isascii() and value.isdigit())
            ):
                problem = f"{key} {value!r} is not a number of bytes"
            else:
                continue
            raise CorruptModelError(
                f"{path} is damaged: the external data of tensor {name}: {problem}; export or "
                "copy the model again",
                path=path,
            )


# Constant-node tensors of these types hold shapes, axes and indices, not weights.
_INDEX_TYPES = frozenset({6, 7})  # TensorProto.INT32, TensorProto.INT64


def _constant_weights(proto: Any) -> Iterator[Any]:
    """Weights stored as ``Constant`` nodes rather than initializers.

    The TorchScript-based exporter writes a frozen module's weights so. Every non-index tensor
    of two or more values counts.
    """
    for graph in _graphs(proto.graph):
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            for attr in node.attribute:
                tensor = attr.t if attr.HasField("t") else None
                if attr.HasField("sparse_tensor"):
                    tensor = attr.sparse_tensor.values
                if tensor is None or int(tensor.data_type) in _INDEX_TYPES:
                    continue
                if math.prod(int(d) for d in tensor.dims) >= 2:
                    yield tensor


def _parameter_sizes(proto: Any) -> tuple[int, int]:
    """(count, bytes) of the model's weights, external data included, without reading it.

    The weights are the initializers plus the weight-like ``Constant`` nodes.
    """
    if proto is None:
        return 0, 0
    count = 0
    bits = 0
    for tensor in itertools.chain(_initializers(proto), _constant_weights(proto)):
        n = math.prod(int(d) for d in tensor.dims)
        count += n
        bits += n * _element_bits(int(tensor.data_type))
    return count, (bits + 7) // 8


def _element_bits(data_type: int) -> int:
    onnx = frameworks.import_onnx()
    try:
        name = onnx.TensorProto.DataType.Name(data_type) if data_type else "UNDEFINED"
    except ValueError:  # a number no ONNX release defines (damaged, or newer than this onnx)
        return 0  # ONNX Runtime judges the tensor when it loads it
    if name in _SUB_BYTE_BITS:
        return _SUB_BYTE_BITS[name]
    if name in {"STRING", "UNDEFINED"}:
        return 0
    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize) * 8
    except (KeyError, TypeError, ValueError):  # a type newer than this onnx maps
        return 0


# -- messages ------------------------------------------------------------------------------


def _shapes_text(inputs: Mapping[str, Any]) -> str:
    parts = []
    for key, value in inputs.items():
        shape = getattr(value, "shape", None)
        if callable(shape):  # OrtValue.shape() is a method
            shape = shape()
        parts.append(f"{key} {tuple(shape) if shape is not None else '?'}")
    return ", ".join(parts) or "(none)"


def _shared_dims(specs: Sequence[TensorSpec]) -> list[str]:
    seen: dict[str, int] = {}
    for spec in specs:
        for dim in {d for d in (spec.shape or ()) if isinstance(d, str)}:
            seen[dim] = seen.get(dim, 0) + 1
    return sorted(d for d, n in seen.items() if n > 1)


def _first_line(message: str) -> str:
    text = " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    return text.removeprefix("[ONNXRuntimeError] : ").strip()
