"""The one exception hierarchy of pyinfer.

Every error pyinfer raises on purpose is a :class:`PyinferError`. Each class also subclasses the
builtin exception a caller would expect (``ValueError``, ``RuntimeError``, ``MemoryError``, ...),
so ``except ValueError`` keeps working for code that does not know about pyinfer.

The native core raises these same classes: its C++ exceptions are translated on the way out.
"""

from __future__ import annotations

__all__ = [
    "BufferInUseError",
    "CudaError",
    "CudaUnavailableError",
    "DeviceError",
    "InvalidArgumentError",
    "OutOfMemoryError",
    "PyinferError",
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
