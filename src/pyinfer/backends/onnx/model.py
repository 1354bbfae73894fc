""":class:`OnnxModel`: an ONNX Runtime session behind the ``Model`` interface, and its errors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import Model, ModelFormat, TensorSpec
from pyinfer.errors import (
    InvalidArgumentError,
    InvalidInputError,
    OutOfMemoryError,
    as_out_of_memory,
)

_INPUT_NAME_PATTERN = re.compile(r"for input: ([^\s]+)")


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
        **kwargs: Any,
    ) -> None:
        """Wraps a created session.

        Args:
            session: The ``onnxruntime.InferenceSession``.
            ort: The onnxruntime module.
            stream: The CUDA stream object to keep alive with the session (``None`` if none).
            stream_handle: Its handle as given to ONNX Runtime, or ``None``.
            **kwargs: The other :class:`~pyinfer.backends.base.Model` attributes (``name``,
                ``device``, ``path``, ``inputs``, ``outputs``, ``parameter_count``,
                ``parameter_bytes``, ``options``); the format is ONNX, the framework
                ``"onnxruntime"``.
        """
        super().__init__(format=ModelFormat.ONNX, framework="onnxruntime", **kwargs)
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

    @property
    def supports_overlapped_upload(self) -> bool:
        """True on CUDA: batches staged in pinned memory are copied into ``OrtValue`` objects.

        The copy itself is synchronous (:meth:`upload_async` is :meth:`to_native`, stream 0);
        the overlap is the caller's staging of the next batch while this one computes.
        """
        return self.device.is_cuda

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


def _is_ort_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of ONNX Runtime's exception classes (they share no base)."""
    return type(exc).__module__.startswith("onnxruntime")


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
