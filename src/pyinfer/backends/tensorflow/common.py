"""What the TensorFlow models share: the device string, dtype and shape helpers, the base class."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import Device, DeviceMemoryReading, Dim, Model, framework_cause
from pyinfer.errors import CudaUnavailableError, InferenceError, PyinferError, as_out_of_memory

logger = logging.getLogger(__name__)


def _tf_device(tf: ModuleType, device: Device, path: Path) -> str:
    if not device.is_cuda:
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if device.index >= len(gpus):
        seen = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
        raise CudaUnavailableError(
            f"cannot load {path} on {device}: TensorFlow sees {seen} (is the CUDA build of "
            "tensorflow installed, pip install 'tensorflow[and-cuda]', and a driver present?); "
            "load it with device='cpu' instead"
        )
    return f"/GPU:{device.index}"  # pragma: no cover - needs a GPU visible to TensorFlow


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    """A numpy dtype from a TensorFlow DType, a Keras dtype string or a numpy type."""
    as_numpy = getattr(dtype, "as_numpy_dtype", None)
    result: np.dtype[Any] = np.dtype(
        as_numpy if as_numpy is not None else dtype if isinstance(dtype, type) else str(dtype)
    )
    return result


def _shape(dims: Any) -> tuple[Dim, ...]:
    return tuple(None if d is None or int(d) < 0 else int(d) for d in dims)


class TensorFlowModel(Model):
    """What Keras and SavedModel models share: device placement, conversion, synchronisation."""

    def __init__(self, *, tf: ModuleType, tf_device: str, **kwargs: Any) -> None:
        super().__init__(framework="tensorflow", **kwargs)
        self._tf = tf
        self._tf_device = tf_device

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Copies numpy inputs to ``tf.Tensor`` objects on the model's device."""
        with self._tf.device(self._tf_device):
            return {k: self._tf.identity(self._tf.convert_to_tensor(v)) for k, v in inputs.items()}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copies outputs (``tf.Tensor`` or numpy) to host numpy arrays, waiting for them."""
        return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in outputs.items()}

    def synchronize(self) -> None:
        """Waits for the GPU work queued by TensorFlow (a no-op on the CPU).

        TensorFlow exposes no CUDA stream, so :attr:`stream_handle` is ``None``; on a GPU the
        tensors :meth:`run_native` returns may still be computing, and this waits for every
        device through ``tf.test.experimental.sync_devices()``. :meth:`to_numpy` waits by itself.
        """
        if self.device.is_cuda:  # pragma: no cover - needs a GPU visible to TensorFlow
            self._tf.test.experimental.sync_devices()

    def measure_device_memory(
        self, run: Callable[[], object], runs: int
    ) -> DeviceMemoryReading | None:
        """TensorFlow's GPU memory statistics over ``runs`` calls (``None`` on the CPU).

        The activation is TensorFlow's peak during the calls (``get_memory_info``'s ``peak``
        after ``reset_memory_stats``) over its use before them. Where TensorFlow keeps no
        statistics for the GPU the calls still run, and the reading says so with no numbers.
        """
        if not self.device.is_cuda:
            return None
        experimental = self._tf.config.experimental
        name = f"GPU:{self.device.index}"
        current: int | None
        try:
            experimental.reset_memory_stats(name)
            current = int(experimental.get_memory_info(name)["current"])
        except Exception as exc:
            logger.info("TensorFlow reports no GPU memory statistics: %s", exc)
            current = None
        for _ in range(runs):
            run()
        if current is None:
            return DeviceMemoryReading(
                activation_bytes=None,
                allocated_bytes=None,
                reserved_bytes=None,
                framework_peak_bytes=None,
                method="unavailable: TensorFlow reports no GPU memory statistics",
            )
        peak = int(experimental.get_memory_info(name)["peak"])
        return DeviceMemoryReading(
            activation_bytes=peak - current,
            allocated_bytes=None,
            reserved_bytes=None,
            framework_peak_bytes=peak,
            method=f"TensorFlow peak over its use before the calls, {runs} calls",
        )

    def _run_error(self, exc: Exception, inputs: Mapping[str, Any]) -> PyinferError:
        """The typed error for a failed call: out of memory, or the model itself failed.

        The inputs were checked against the model's specs before the call, so a TensorFlow
        error here (``InvalidArgumentError`` from a graph that contradicts its own signature, a
        missing output) means the model is broken, e.g. a damaged ``saved_model.pb``.
        """
        oom = as_out_of_memory(exc)
        if oom is not None:
            return oom
        given = ", ".join(f"{n} {tuple(np.shape(v))}" for n, v in inputs.items())
        detail = framework_cause(exc)
        return InferenceError(
            f"model '{self.name}' ({self.path or self.format.value}) failed on inputs {given}: "
            f"{type(exc).__name__}: {detail}"
        )


@contextlib.contextmanager
def device_scope(tf: ModuleType, tf_device: str) -> Iterator[None]:
    """``tf.device(tf_device)`` as a typed context manager."""
    with tf.device(tf_device):
        yield
