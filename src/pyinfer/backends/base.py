"""The one interface every loaded model offers, whatever framework runs it.

A :class:`Model` is what :func:`pyinfer.load_model` returns. It says what the model is (name,
format, framework, device), what it takes and gives (:class:`TensorSpec` per input and output,
with dynamic dimensions marked), how big it is (parameter count and bytes), which speed-ups the
loader applied (:attr:`Model.options`), and how long loading took (:attr:`Model.load_time_s`,
the cold start). It runs in two ways:

* ``model(inputs)``: a dict of numpy arrays in, a dict of numpy arrays out (host memory, copies
  included), the simple and portable path;
* ``model.run_native(tensors)``: framework-native tensors already on the model's device in,
  framework-native outputs out, with no copies, the path the profiler times on a GPU. It may
  return before the device has finished: call :meth:`Model.synchronize` before reading a clock,
  or time on :attr:`Model.stream_handle` with CUDA events.

Each framework has its own module in this package; only that module imports its framework.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.formats import ModelFormat, formats_of_family

__all__ = [
    "Device",
    "DeviceMemoryReading",
    "Dim",
    "Model",
    "ModelFormat",
    "TensorSpec",
    "check_options",
    "parse_device",
]

logger = logging.getLogger(__name__)

#: One dimension of a tensor shape: an ``int`` is fixed, a ``str`` is a named dynamic dimension
#: (``"batch"``, ONNX's ``"N"``), ``None`` is a dynamic dimension without a name.
Dim: TypeAlias = int | str | None


#: The torch family's formats (derived from the registry in :mod:`pyinfer.formats`).
_TORCH_FORMATS = formats_of_family("torch")


@dataclass(frozen=True)
class Device:
    """Where a model runs: ``cpu`` or ``cuda`` with a device index.

    Attributes:
        type: ``"cpu"`` or ``"cuda"``.
        index: The CUDA device ordinal (0 for the CPU).
    """

    type: str
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        """Whether this is a CUDA device."""
        return self.type == "cuda"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else "cpu"


def parse_device(device: str | Device | None) -> Device:
    """Parses a device name as users write it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"gpu"``, ``"gpu:1"``, a :class:`Device`,
            or ``None`` for the CPU. Case and surrounding spaces are ignored.

    Returns:
        The device.

    Raises:
        InvalidArgumentError: If the name is none of these.
    """
    if device is None:
        return Device("cpu")
    if isinstance(device, Device):
        return device
    text = str(device).strip().lower()
    kind, _, index_text = text.partition(":")
    if kind == "cpu" and not index_text:
        return Device("cpu")
    if kind in {"cuda", "gpu"}:
        if not index_text:
            return Device("cuda", 0)
        if index_text.isdigit():
            return Device("cuda", int(index_text))
    raise InvalidArgumentError(
        f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N' (N the GPU's index)"
    )


def check_options(
    options: Mapping[str, Any],
    known: Iterable[str] | Mapping[str, str],
    *,
    loader: str,
    path: Path | None,
) -> None:
    """Refuses options a backend does not know, listing the ones it does.

    Args:
        options: The options given.
        known: The option names the backend accepts; a mapping of name to description lists
            each with its description.
        loader: Who refuses, in the message (``"ONNX"``, ``"PyTorch loader"``...).
        path: The model the options were given for (``None`` for an in-memory model).

    Raises:
        InvalidArgumentError: If any option is unknown; the message names them and lists the
            known ones.
    """
    unknown = sorted(set(options) - set(known))
    if unknown:
        where = "" if path is None else f" for {path}"
        if isinstance(known, Mapping):
            listed = "; ".join(f"{k} ({v})" for k, v in sorted(known.items()))
        else:
            listed = ", ".join(sorted(known))
        raise InvalidArgumentError(
            f"unknown {loader} option(s) {', '.join(repr(u) for u in unknown)}{where}; "
            f"known: {listed}"
        )


def _dim_text(dim: Dim) -> str:
    if dim is None:
        return "?"
    return str(dim)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output.

    Attributes:
        name: The tensor's name in the model (ONNX input name, Keras input name, the argument
            name of a torch ``forward``; ``output_0``, ``output_1``, ... where the model names
            none).
        shape: One entry per dimension: an ``int`` is fixed, a ``str`` names a dynamic dimension
            (``"batch"``), ``None`` is dynamic without a name. ``None`` for the whole shape means
            the rank itself is unknown (a torch module whose inputs were not declared).
        dtype: The numpy dtype of the tensor's elements.
    """

    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.float32))

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def rank(self) -> int | None:
        """The number of dimensions, or ``None`` if unknown."""
        return None if self.shape is None else len(self.shape)

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        """Positions of the dynamic dimensions (named or not)."""
        if self.shape is None:
            return ()
        return tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int))

    @property
    def is_dynamic(self) -> bool:
        """Whether any dimension (or the rank) is dynamic."""
        return self.shape is None or bool(self.dynamic_axes)

    @property
    def has_dynamic_batch(self) -> bool:
        """Whether the first dimension is dynamic, so any batch size is accepted."""
        return self.shape is None or (len(self.shape) > 0 and not isinstance(self.shape[0], int))

    def concrete_shape(self, batch_size: int | None = None, **dims: int) -> tuple[int, ...]:
        """A shape to build an example input with, dynamic dimensions filled in.

        Args:
            batch_size: Size of a dynamic first dimension (default 1).
            **dims: Sizes of named dynamic dimensions (``sequence=128``).

        Returns:
            The shape with every dimension fixed.

        Raises:
            InvalidArgumentError: If the rank is unknown, or a dynamic dimension other than the
                first has no size in ``dims``.
        """
        if self.shape is None:
            raise InvalidArgumentError(
                f"input '{self.name}' has no declared shape; give the model an input shape "
                "(load_model(..., input_shapes={...}))"
            )
        out: list[int] = []
        for axis, dim in enumerate(self.shape):
            if isinstance(dim, int):
                out.append(dim)
            elif isinstance(dim, str) and dim in dims:
                out.append(int(dims[dim]))
            elif axis == 0:
                out.append(1 if batch_size is None else int(batch_size))
            else:
                raise InvalidArgumentError(
                    f"input '{self.name}' has dynamic dimension {axis} ({_dim_text(dim)}) in "
                    f"shape {self.shape_text()}; give its size"
                    + (f" as {dim}=N" if isinstance(dim, str) else "")
                )
        return tuple(out)

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        """Whether a concrete shape fits this spec (same rank, fixed dimensions equal)."""
        if self.shape is None:
            return True
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(d, int) or d == s for d, s in zip(self.shape, shape, strict=True))

    def shape_text(self) -> str:
        """The shape as users read it: ``(batch, 3, 224, 224)``, ``?`` for unnamed dynamics."""
        if self.shape is None:
            return "(unknown)"
        inner = ", ".join(_dim_text(d) for d in self.shape)
        return f"({inner},)" if len(self.shape) == 1 else f"({inner})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: name, shape (dynamic dimensions as strings or null), dtype."""
        return {
            "name": self.name,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype.name,
        }

    def __str__(self) -> str:
        return f"{self.name}: {self.shape_text()} {self.dtype.name}"


class Model(abc.ABC):
    """A loaded model, ready to run; one subclass per framework in ``pyinfer.backends``.

    Subclasses set the attributes below in their constructor and implement :meth:`run_native`,
    :meth:`to_native` and :meth:`to_numpy`; the numpy path, input checks and descriptions are
    shared here.

    Attributes:
        name: A short name for reports (the file's stem unless the caller gave one).
        format: The format the model was loaded from.
        framework: The runtime that executes it: ``torch``, ``onnxruntime``, ``tensorflow`` or
            ``tflite``.
        device: Where it runs.
        path: The file or folder it was loaded from (``None`` for an in-memory model).
        inputs: One spec per input, in the order the model takes them.
        outputs: One spec per output, in the order the model gives them.
        parameter_count: Number of scalar weights.
        parameter_bytes: Bytes those weights take.
        options: The loader options in effect, including the speed-ups applied by default
            (``channels_last``, ``freeze``, thread counts, providers...), so reports can say
            how the model was run.
        load_time_s: Seconds :func:`pyinfer.load_model` took, framework import excluded: the
            cold start the profiler reports.
        import_time_s: Seconds spent importing the framework during this load (0 when it was
            already imported).
    """

    name: str
    format: ModelFormat
    framework: str
    device: Device
    path: Path | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameter_count: int
    parameter_bytes: int
    options: dict[str, Any]
    load_time_s: float
    import_time_s: float

    def __init__(
        self,
        *,
        name: str,
        format: ModelFormat,
        framework: str,
        device: Device,
        path: Path | None,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        parameter_count: int,
        parameter_bytes: int,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self.framework = framework
        self.device = device
        self.path = path
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.parameter_count = int(parameter_count)
        self.parameter_bytes = int(parameter_bytes)
        self.options = dict(options or {})
        self.load_time_s = math.nan
        self.import_time_s = 0.0

    # -- running ---------------------------------------------------------------------------

    @abc.abstractmethod
    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the model on framework-native tensors already on its device.

        Args:
            inputs: Input name to tensor (``torch.Tensor``, ``OrtValue``, ``tf.Tensor`` or numpy
                array for runtimes that take host memory), as made by :meth:`to_native`.

        Returns:
            Output name to framework-native tensor, in the order of :attr:`outputs`. On a GPU the
            work may still be running: :meth:`synchronize` before reading results or a clock.
        """

    @abc.abstractmethod
    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Converts numpy inputs to framework-native tensors on the model's device.

        Args:
            inputs: Input name to array, already checked by :meth:`check_inputs`.

        Returns:
            Input name to native tensor, ready for :meth:`run_native`.
        """

    @abc.abstractmethod
    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copies framework-native outputs back to host numpy arrays (synchronising)."""

    def __call__(
        self, inputs: Mapping[str, Any] | np.ndarray | Sequence[np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Runs the model on host arrays and returns host arrays.

        Args:
            inputs: A dict of input name to array; a single array for a one-input model; or a
                list of arrays in input order.

        Returns:
            Output name to numpy array, in the order of :attr:`outputs`.

        Raises:
            InvalidInputError: If an input is missing, unexpected, or of the wrong rank, shape or
                dtype.
        """
        arrays = self.check_inputs(inputs)
        return self.to_numpy(self.run_native(self.to_native(arrays)))

    def synchronize(self) -> None:  # noqa: B027 - a no-op is right for host runtimes
        """Waits until all work queued by this model on its device has finished.

        A no-op for runtimes that finish before ``run_native`` returns (CPU, TFLite).
        """

    @property
    def stream_handle(self) -> int | None:
        """The CUDA stream (as an int handle) this model runs on, or ``None`` off CUDA.

        Time the model with :class:`pyinfer.CudaEventTimer` on this stream. ``None`` also for
        runtimes that expose no stream (TensorFlow): time those on the host after
        :meth:`synchronize`.
        """
        return None

    def close(self) -> None:  # noqa: B027 - most backends free on garbage collection
        """Releases the runtime's resources (sessions, interpreters) early."""

    # -- hooks for the engine and the profiler ---------------------------------------------
    # They never ask which framework runs a model: each backend answers these instead. The
    # defaults here are right for runtimes that keep no device caches or statistics.

    def release_cached_memory(self) -> None:  # noqa: B027 - nothing cached by default
        """Returns the framework's cached, unused device memory to the device.

        Called after an out-of-memory error and between measurements, so a later allocation
        (or another runtime in the process) finds the memory free. A no-op by default; torch
        on CUDA empties its caching allocator (``torch.cuda.empty_cache()``). Garbage
        collection is the caller's.
        """

    @property
    def supports_cuda_graphs(self) -> bool:
        """Whether a call can be captured in a CUDA graph and replayed (torch on CUDA only)."""
        return False

    def measure_device_memory(
        self, run: Callable[[], object], runs: int
    ) -> DeviceMemoryReading | None:
        """Runs ``run`` ``runs`` times between readings of the framework's allocator statistics.

        Args:
            run: One call of the model (inputs already prepared).
            runs: How many times to call it.

        Returns:
            What the framework's allocator saw over the calls; ``None`` (the default, for
            runtimes that keep no statistics such as ONNX Runtime and TFLite) means nothing was
            run and the caller measures the device-wide used memory around its own calls.
        """
        return None

    @property
    def supports_overlapped_upload(self) -> bool:
        """Whether uploads can overlap compute (torch and ONNX Runtime on CUDA).

        Then the caller stages batches in page-locked memory and calls :meth:`upload_async`,
        so uploading the next batch overlaps the current one's compute.
        """
        return False

    def upload_async(self, host: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], int]:
        """Starts copying host arrays (pinned, for an overlap) to native tensors on the device.

        Args:
            host: Input name to array, as :meth:`to_native` takes them; the arrays must stay
                untouched until the copy has finished on the returned stream.

        Returns:
            The native tensors, ready for :meth:`run_native` (work queued on the model's
            stream waits for the copy), and the handle of the CUDA stream the copy was issued
            on: record an event there before reusing ``host``'s memory. ``0`` when the copy
            is already complete on return (the default: :meth:`to_native`).
        """
        return self.to_native(host), 0

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs ----------------------------------------------------------------------------

    def input_names(self) -> list[str]:
        """The input names, in order."""
        return [spec.name for spec in self.inputs]

    def output_names(self) -> list[str]:
        """The output names, in order."""
        return [spec.name for spec in self.outputs]

    def check_inputs(
        self, inputs: Mapping[str, Any] | np.ndarray | Sequence[np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Checks host inputs against :attr:`inputs` and returns them as a name-ordered dict.

        Arrays are never cast: a dtype other than the spec's is an error that names the safe
        cast to make (``x.astype(np.float32)``), so no precision or range is lost silently.

        Args:
            inputs: As for :meth:`__call__`.

        Returns:
            Input name to contiguous numpy array, in the model's input order.

        Raises:
            InvalidInputError: On a missing or unexpected name, a wrong count, or a wrong rank,
                fixed dimension or dtype; the message names the input, what was expected and
                what was given.
        """
        names = self.input_names()
        if isinstance(inputs, np.ndarray):
            if len(names) != 1:
                raise InvalidInputError(
                    f"model '{self.name}' takes {len(names)} inputs ({', '.join(names)}); "
                    "pass a dict of name to array"
                )
            given: dict[str, Any] = {names[0]: inputs}
        elif isinstance(inputs, Mapping):
            given = dict(inputs)
            mismatch = name_mismatch(self.name, names, given)
            if mismatch:
                raise InvalidInputError(mismatch)
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) != len(names):
                raise InvalidInputError(
                    f"model '{self.name}' takes {len(names)} inputs ({', '.join(names)}), "
                    f"{len(inputs)} given"
                )
            given = dict(zip(names, inputs, strict=True))
        else:
            raise InvalidInputError(
                f"model '{self.name}' inputs must be a dict of name to numpy array, an array or "
                f"a list of arrays, not {type(inputs).__name__}"
            )
        out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            value = given[spec.name]
            if not isinstance(value, np.ndarray):
                raise InvalidInputError(
                    f"input '{spec.name}' of model '{self.name}' must be a numpy array, "
                    f"not {type(value).__name__}"
                )
            _check_array(self.name, spec, value)
            out[spec.name] = np.ascontiguousarray(value)
        return out

    def example_inputs(
        self,
        batch_size: int = 1,
        *,
        seed: int = 0,
        dims: Mapping[str, int] | None = None,
    ) -> dict[str, np.ndarray]:
        """Random inputs matching :attr:`inputs`, for smoke tests and profiling.

        Floats are standard normal; integers are drawn from ``[0, 100)`` (valid token ids for
        any realistic vocabulary); booleans are random.

        Args:
            batch_size: Size of the dynamic first dimension.
            seed: Seed of the generator, so runs are reproducible.
            dims: Sizes of other named dynamic dimensions.

        Returns:
            Input name to array.

        Raises:
            InvalidArgumentError: If an input's shape is unknown or has an unnamed dynamic
                dimension besides the batch.
        """
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            shape = spec.concrete_shape(batch_size, **dict(dims or {}))
            if spec.dtype.kind == "f":
                out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            elif spec.dtype.kind in "iu":
                out[spec.name] = rng.integers(0, 100, size=shape).astype(spec.dtype)
            elif spec.dtype.kind == "b":
                out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
            else:
                raise InvalidArgumentError(
                    f"cannot make an example for input '{spec.name}' of dtype {spec.dtype}"
                )
        return out

    # -- description -----------------------------------------------------------------------

    @property
    def has_dynamic_batch(self) -> bool:
        """Whether every input accepts any batch size."""
        return all(spec.has_dynamic_batch for spec in self.inputs)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: what ``pyinfer info`` prints and reports record."""
        return {
            "name": self.name,
            "format": self.format.value,
            "framework": self.framework,
            "device": str(self.device),
            "path": None if self.path is None else str(self.path),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "parameter_count": self.parameter_count,
            "parameter_bytes": self.parameter_bytes,
            "options": {k: _jsonable(v) for k, v in self.options.items()},
            "load_time_s": self.load_time_s,
            "import_time_s": self.import_time_s,
        }

    def __repr__(self) -> str:
        ins = ", ".join(str(s) for s in self.inputs)
        return (
            f"<{type(self).__name__} {self.name!r} {self.format.value} on {self.device}: "
            f"{ins} -> {len(self.outputs)} output(s), {self.parameter_count:,} parameters>"
        )


@dataclass(frozen=True)
class DeviceMemoryReading:
    """Device memory a framework's allocator saw over some calls of a model.

    Attributes:
        activation_bytes: Peak memory over the calls above what was in use before them
            (``None`` where the framework could not say).
        allocated_bytes: Memory held by tensors after the calls (torch), else ``None``.
        reserved_bytes: Memory the framework's caching allocator holds after the calls
            (torch), else ``None``.
        framework_peak_bytes: The framework's own peak over the calls (TensorFlow), else
            ``None``.
        method: How ``activation_bytes`` was measured, in words, for reports.
    """

    activation_bytes: int | None
    allocated_bytes: int | None
    reserved_bytes: int | None
    framework_peak_bytes: int | None
    method: str


def name_mismatch(
    model_name: str, names: Sequence[str], given: Iterable[str], where: str = ""
) -> str | None:
    """Says which input names are missing or unexpected, or ``None`` when they match.

    Args:
        model_name: The model, for the message.
        names: The names the model takes, in order.
        given: The names given.
        where: Said after ``inputs`` (``" (item 3)"``).

    Returns:
        The message for an :class:`~pyinfer.errors.InvalidInputError`, or ``None``.
    """
    given = list(given)
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if not (missing or extra):
        return None
    parts = []
    if missing:
        parts.append(f"missing {', '.join(repr(n) for n in missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(repr(n) for n in extra)}")
    return (
        f"model '{model_name}' inputs{where}: {'; '.join(parts)} "
        f"(it takes {', '.join(repr(n) for n in names)})"
    )


def _check_array(model_name: str, spec: TensorSpec, value: np.ndarray) -> None:
    if value.dtype != spec.dtype:
        hint = ""
        if np.can_cast(value.dtype, spec.dtype, casting="same_kind"):
            hint = f"; cast it explicitly with .astype(np.{spec.dtype.name})"
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must be {spec.dtype.name}, "
            f"got {value.dtype.name}{hint}"
        )
    if spec.shape is None:
        return
    if value.ndim != len(spec.shape):
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must have {len(spec.shape)} "
            f"dimensions {spec.shape_text()}, got shape {tuple(value.shape)}"
        )
    if not spec.accepts_shape(value.shape):
        bad = [
            i
            for i, (d, s) in enumerate(zip(spec.shape, value.shape, strict=True))
            if isinstance(d, int) and d != s
        ]
        raise InvalidInputError(
            f"input '{spec.name}' of model '{model_name}' must have shape {spec.shape_text()}, "
            f"got {tuple(value.shape)} (dimension {bad[0]} is {value.shape[bad[0]]}, "
            f"expected {spec.shape[bad[0]]})"
        )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    return str(value)


def output_specs_from_arrays(
    arrays: Mapping[str, np.ndarray], *, dynamic_batch: bool
) -> tuple[TensorSpec, ...]:
    """Output specs observed from one run: shapes as seen, the batch marked dynamic if asked.

    Args:
        arrays: Output name to array from a run.
        dynamic_batch: Whether the first dimension follows the input batch.

    Returns:
        One spec per output, in order.
    """
    specs = []
    for name, arr in arrays.items():
        shape: list[Dim] = list(arr.shape)
        if dynamic_batch and shape:
            shape[0] = "batch"
        specs.append(TensorSpec(name, tuple(shape), arr.dtype))
    return tuple(specs)
