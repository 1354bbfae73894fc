"""The one exception hierarchy of pyinfer.

Every error pyinfer raises on purpose is a :class:`PyinferError`. Each class also subclasses the
builtin exception a caller would expect (``ValueError``, ``RuntimeError``, ``MemoryError``, ...),
so ``except ValueError`` keeps working for code that does not know about pyinfer.

The native core raises these same classes: its C++ exceptions are translated on the way out.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureError",
    "BufferInUseError",
    "CorruptModelError",
    "CudaError",
    "CudaUnavailableError",
    "DeviceError",
    "FrameworkNotInstalledError",
    "InvalidArgumentError",
    "InvalidInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "PyinferError",
    "UnknownFormatError",
    "UntrustedModelError",
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
    """An allocation failed: host memory, page-locked memory or device memory."""


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
    """Loading would run code stored in the file (a pickle, a Keras lambda); opt in to allow it."""


class InvalidInputError(PyinferError, ValueError):
    """An input tensor has the wrong name, shape or dtype for the model; the message names it."""
