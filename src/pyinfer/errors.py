"""The one exception hierarchy of pyinfer.

Every error pyinfer raises on purpose is a :class:`PyinferError`. Each class also subclasses the
builtin exception a caller would expect (``ValueError``, ``RuntimeError``, ``MemoryError``, ...),
so ``except ValueError`` keeps working for code that does not know about pyinfer.

The native core raises these same classes: its C++ exceptions are translated on the way out.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArchitectureError",
    "BufferInUseError",
    "ClusterError",
    "CorruptModelError",
    "CudaError",
    "CudaUnavailableError",
    "DatasetSourceError",
    "DeviceError",
    "FrameworkNotInstalledError",
    "InferenceError",
    "InvalidArgumentError",
    "InvalidInputError",
    "MeasurementConflictError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "PyinferError",
    "UnknownFormatError",
    "UntrustedModelError",
    "as_out_of_memory",
]


class PyinferError(Exception):
    """Base class of every error raised by pyinfer."""


class InvalidArgumentError(PyinferError, ValueError):
    """An argument is out of its domain (a negative duration, a percentile of 150, ...)."""


class DeviceError(PyinferError, RuntimeError):
    """A device (GPU) could not be used as asked."""


class CudaUnavailableError(DeviceError):
    """CUDA was asked for, but there is no usable driver or device on this machine."""


class CudaError(DeviceError):
    """A CUDA driver call failed; the message names the call and the driver's error."""


class OutOfMemoryError(PyinferError, MemoryError):
    """An allocation failed: host memory, page-locked memory or device memory.

    Attributes:
        partial_result: When the inference engine gives up (batch 1 still does not fit), what it
            finished before (a ``DatasetResult``); ``None`` elsewhere.
    """

    partial_result: Any = None


class BufferInUseError(PyinferError, BufferError):
    """A buffer cannot be freed while views of it (numpy arrays, tensors) are alive."""


class FrameworkNotInstalledError(PyinferError, ImportError):
    """A framework pyinfer needs for this model is not installed; the message names the extra."""


class ModelLoadError(PyinferError, RuntimeError):
    """A model file or folder could not be loaded; the message names the path and the fix.

    Attributes:
        path: The file or folder that failed to load, or ``None`` when the failure is not tied
            to one (an in-memory module, say).
    """

    def __init__(self, message: str, *, path: object = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model path does not exist, or is a folder where a file is expected (or the reverse)."""


class UnknownFormatError(ModelLoadError, ValueError):
    """The content of a file matches no model format pyinfer knows."""


class CorruptModelError(ModelLoadError, ValueError):
    """The file looks like a known format but is empty, truncated or damaged."""


class ArchitectureError(ModelLoadError, ValueError):
    """Weights without an architecture, or weights that do not fit the architecture given."""


class UntrustedModelError(ModelLoadError, PermissionError):
    """Loading would run code stored in the file (a pickle, a Keras lambda); opt in to allow it.

    Also raised for a file that would make loading read other files (ONNX external data outside
    the model's folder, an ``.h5`` dataset stored elsewhere), which no opt-in allows.
    """


class InferenceError(PyinferError, RuntimeError):
    """A model (or the dataset feeding it) failed while the engine ran (not out of memory).

    Attributes:
        partial_result: What the engine finished before the failure (a ``DatasetResult``), so no
            finished work is lost; ``None`` when nothing had run.
    """

    def __init__(self, message: str, *, partial_result: Any = None) -> None:
        super().__init__(message)
        self.partial_result = partial_result


class DatasetSourceError(InferenceError):
    """The iterable a dataset run read its inputs from raised; the items before it were run.

    Attributes:
        partial_result: The results of every item the source gave before it failed.
    """


class ClusterError(PyinferError, RuntimeError):
    """Ray could not start or reach the cluster, or work placed on it failed there.

    The message names the cluster address (or the local cluster), what failed and Ray's own cause.
    """


class InvalidInputError(PyinferError, ValueError):
    """An input tensor has the wrong name, shape or dtype for the model; the message names it."""


class MeasurementConflictError(PyinferError, RuntimeError):
    """A measurement was started on a device another thread of this process is measuring on.

    Two measurements at once on one device distort each other; the message names the device,
    the measurement running and how to avoid the conflict.
    """


# Exception class names that mean "out of memory" in the frameworks pyinfer runs, matched by name
# so this module imports none of them: torch.cuda.OutOfMemoryError (and torch.OutOfMemoryError),
# TensorFlow's ResourceExhaustedError, and the Python builtin.
_OOM_TYPE_NAMES = frozenset({"OutOfMemoryError", "ResourceExhaustedError", "MemoryError"})
# Lower-case message fragments that mean the same where the class is generic (a torch
# RuntimeError from an older release or from its CPU allocator, ONNX Runtime's RuntimeException
# or Fail, a C++ std::bad_alloc translated by pybind11).
_OOM_MESSAGES = (
    "out of memory",
    "failed to allocate memory",
    "can't allocate memory",  # torch's DefaultCPUAllocator (host memory, e.g. under RLIMIT_AS)
    "cannot allocate memory",  # strerror(ENOMEM), as runtimes quote it
    "bad allocation",
    "std::bad_alloc",
    "oom when allocating",
    "resource exhausted",
    "cudnn_status_alloc_failed",
    "cublas_status_alloc_failed",
)
# oneDNN (behind torch's CPU convolutions) reports a failed allocation for a new kernel (its JIT
# code, its scratchpad) only as "could not create a primitive", the words it also uses for a
# configuration it does not support. Under a capped address space (RLIMIT_AS, ``ulimit -v``)
# that failure is the cap: seen at the edge of the cap, where one batch size fails in torch's
# allocator ("can't allocate memory") and the next in oneDNN, run to run.
_CAPPED_ADDRESS_SPACE_MESSAGES = ("could not create a primitive",)


def _address_space_capped() -> bool:
    """Whether this process runs under a finite address-space limit (``RLIMIT_AS``)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return soft != resource.RLIM_INFINITY


def as_out_of_memory(exc: BaseException) -> OutOfMemoryError | None:
    """Recognises an out-of-memory failure from any framework pyinfer runs.

    torch (CUDA or host), ONNX Runtime, TensorFlow and Python each report an allocation failure
    in their own way; this maps all of them to one :class:`OutOfMemoryError`, so callers (the
    engine's batch back-off, the profiler's batch sweep) can react to one type. No framework is
    imported: the exception is recognised by its class names and its message.

    Args:
        exc: The exception a model run raised.

    Returns:
        ``exc`` itself when it already is an :class:`OutOfMemoryError`; a new one, chained to
        ``exc`` and carrying its message, when ``exc`` means out of memory; ``None`` otherwise.
    """
    if isinstance(exc, OutOfMemoryError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(exc).strip()
    lowered = message.lower()
    if not (
        names & _OOM_TYPE_NAMES
        or any(m in lowered for m in _OOM_MESSAGES)
        or (any(m in lowered for m in _CAPPED_ADDRESS_SPACE_MESSAGES) and _address_space_capped())
    ):
        return None
    first_line = message.splitlines()[0] if message else ""
    converted = OutOfMemoryError(
        f"{type(exc).__name__}: {first_line}"
        if first_line
        else f"{type(exc).__name__} (out of memory)"
    )
    converted.__cause__ = exc
    return converted
