"""The ONNX loader's options (:data:`KNOWN_OPTIONS`), checked once into a settings object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.errors import InvalidArgumentError

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
