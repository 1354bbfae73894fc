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
from typing import Any

import numpy as np

from pyinfer.backends.device import Device, parse_device
from pyinfer.backends.tensors import (
    Dim,
    TensorSpec,
    check_array,
    fit_batch,
    framework_cause,
    name_mismatch,
    output_specs_from_arrays,
    with_batch_axes,
)
from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.formats import ModelFormat

__all__ = [
    "Device",
    "DeviceMemoryReading",
    "Dim",
    "LoadRequest",
    "Model",
    "ModelFormat",
    "TensorSpec",
    "check_options",
    "fit_batch",
    "framework_cause",
    "name_mismatch",
    "output_specs_from_arrays",
    "parse_device",
    "with_batch_axes",
]

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class LoadRequest:
    """What a loader was asked, so that another process can load the same model.

    Attributes:
        path: The model file or folder, absolute.
        format: The format's name (``"onnx"``...).
        device: The device it was loaded on (``"cpu"``, ``"cuda:0"``).
        name: The model's name in reports.
        options: The options given to the loader, as given (the framework's defaults that the
            loader filled in are in :attr:`Model.options`).
    """

    path: str
    format: str
    device: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


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
        load_request: How to load the model again in another process (the file, format,
            device, name and the options given to the loader); ``None`` for a model that was
            not loaded from a file by :func:`pyinfer.load_model` or a loader.
        default_dims: Sizes of named dynamic dimensions the model knows a sensible value for,
            used where the caller gives none (a Hugging Face folder's ``sequence``: 128, or
            fewer where its position embeddings end); empty for most models.
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
    load_request: LoadRequest | None
    default_dims: dict[str, int]

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
        # The batch axis of each tensor, read from its dimension names (a state's is 1).
        self.inputs, self.outputs = with_batch_axes(inputs, outputs)
        self.parameter_count = int(parameter_count)
        self.parameter_bytes = int(parameter_bytes)
        self.options = dict(options or {})
        self.default_dims = {}
        self.load_time_s = math.nan
        self.import_time_s = 0.0
        self.load_request = None

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
            check_array(self.name, spec, value)
            # np.ascontiguousarray would make a 0-d array (a sample rate) 1-d.
            out[spec.name] = value if value.flags.c_contiguous else value.copy(order="C")
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
        any realistic vocabulary); booleans are random. An input that only takes some values
        (a sample rate) gets its value from the caller: the profiler's and the engine's
        ``input_values`` replace these arrays (:func:`pyinfer.profiling.inputs.given_inputs`).
        A backend may override this method (same signature) to give better examples.

        Args:
            batch_size: Size of each input's dynamic batch axis (:attr:`TensorSpec.batch_axis`).
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


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    return str(value)
