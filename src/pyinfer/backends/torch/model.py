"""The torch module behind the :class:`~pyinfer.backends.base.Model` interface."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import DeviceMemoryReading, Model, TensorSpec, framework_cause
from pyinfer.backends.torch.checkpoints import LoadReport
from pyinfer.errors import InferenceError, PyinferError, as_out_of_memory


class TorchModel(Model):
    """A torch module (eager, scripted or exported) behind the :class:`Model` interface.

    Attributes:
        module: The module that runs (after the speed-ups applied at load).
        load_report: For a model built from a state_dict, how the keys matched; else ``None``.
    """

    def __init__(
        self,
        module: Any,
        *,
        torch_mod: ModuleType,
        keyword_inputs: Sequence[str] = (),
        scalar_inputs: Sequence[str] = (),
        load_report: LoadReport | None = None,
        **kwargs: Any,
    ) -> None:
        """Wraps a module already on its device and in eval mode.

        Args:
            module: The module to run.
            torch_mod: The torch module (imported by the loader).
            keyword_inputs: Inputs passed to ``forward`` by keyword.
            scalar_inputs: Inputs ``forward`` takes as Python scalars (a TorchScript ``int``
                argument): their 0-d tensors are passed as ``tensor.item()``.
            load_report: How a state_dict fitted its architecture, if one did.
            **kwargs: The :class:`~pyinfer.backends.base.Model` attributes (``name``,
                ``format``, ``device``, ``path``, ``inputs``, ``outputs``, ``parameter_count``,
                ``parameter_bytes``, ``options``); ``framework`` is ``"torch"``.
        """
        super().__init__(framework="torch", **kwargs)
        self.module = module
        self.load_report = load_report
        self._torch = torch_mod
        self._torch_device = torch_mod.device(str(self.device))
        self._keyword_inputs = frozenset(keyword_inputs)
        self._scalar_inputs = frozenset(scalar_inputs)
        self._upload_stream: Any = None  # the side stream of upload_async, made at first use

    @property
    def keyword_inputs(self) -> frozenset[str]:
        """Inputs ``forward`` takes by keyword (the others go by position, in input order)."""
        return self._keyword_inputs

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the module under ``torch.inference_mode()`` on tensors already on its device.

        Args:
            inputs: Input name to ``torch.Tensor``.

        Returns:
            Output name to tensor (see the module docstring for the names).

        Raises:
            OutOfMemoryError: If torch could not allocate memory for the call.
            InferenceError: If the module raised; the message names the model, the inputs
                given and declared, and torch's error.
        """
        if self._scalar_inputs:
            inputs = {n: t.item() if n in self._scalar_inputs else t for n, t in inputs.items()}
        args = [inputs[s.name] for s in self.inputs if s.name not in self._keyword_inputs]
        kwargs = {n: inputs[n] for n in self.input_names() if n in self._keyword_inputs}
        with self._torch.inference_mode():
            try:
                result = self.module(*args, **kwargs)
            except Exception as exc:
                raise self._run_error(exc, inputs) from exc
        outputs = {
            n: t if isinstance(t, self._torch.Tensor) else self._torch.as_tensor(t)
            for n, t in flatten_outputs(result, "output", top=True)
            if t is not None  # an optional output the model left out
        }
        if not self.outputs:
            # Shapes were not declared at load: record what the first run gives, the batch
            # on the axis of an input of the same shape (a recurrent state in and out), else
            # on the axis that has the inputs' batch size (the first that does).
            batch = _batch_size(self.inputs, inputs)
            alike = {
                tuple(inputs[s.name].shape): s.batch_axis
                for s in self.inputs
                if s.batch_axis is not None and hasattr(inputs.get(s.name), "shape")
            }
            self.outputs = tuple(
                _observed_spec(
                    n, tuple(t.shape), _numpy_dtype(t.dtype), batch, alike.get(tuple(t.shape))
                )
                for n, t in outputs.items()
            )
        return outputs

    def _run_error(self, exc: Exception, inputs: Mapping[str, Any]) -> PyinferError:
        """The typed error for a failed call of the module: out of memory, or the model failed.

        A module that fails on inputs of its declared shapes and dtypes is broken (a damaged
        ``.pt2`` whose graph contradicts its own input specs, a bug in the model's code).
        """
        oom = as_out_of_memory(exc)
        if oom is not None:
            return oom
        given = ", ".join(
            f"{name} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
            if hasattr(t, "shape")
            else f"{name}={t!r}"
            for name, t in inputs.items()
        )
        specs = ", ".join(f"{s.name} {s.shape_text()} {s.dtype}" for s in self.inputs)
        detail = framework_cause(exc)
        return InferenceError(
            f"model '{self.name}' ({self.path or self.format.value}) failed on inputs {given} "
            f"(it declares {specs}): {type(exc).__name__}: {detail}"
        )

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Copies numpy arrays to tensors on the device (NHWC for 4-D inputs with channels_last).

        Args:
            inputs: Input name to array.

        Returns:
            Input name to tensor.
        """
        torch = self._torch
        channels_last = bool(self.options.get("channels_last"))
        out: dict[str, Any] = {}
        for name, array in inputs.items():
            # torch.from_numpy warns on read-only arrays; copy those instead of sharing.
            tensor = torch.from_numpy(array) if array.flags.writeable else torch.tensor(array)
            if self.device.is_cuda:
                tensor = tensor.to(self._torch_device, non_blocking=tensor.is_pinned())
            if channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            out[name] = tensor
        return out

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copies output tensors to host numpy arrays (bfloat16 becomes float32).

        Args:
            outputs: Output name to tensor.

        Returns:
            Output name to contiguous array.
        """
        result: dict[str, np.ndarray] = {}
        for name, tensor in outputs.items():
            t = tensor.detach()
            if t.dtype == self._torch.bfloat16:
                t = t.float()
            result[name] = np.ascontiguousarray(t.cpu().numpy())
        return result

    def synchronize(self) -> None:
        """Waits for the CUDA device's queued work; a no-op on the CPU."""
        if self.device.is_cuda:
            self._torch.cuda.synchronize(self._torch_device)

    @property
    def stream_handle(self) -> int | None:
        """The handle of torch's current CUDA stream on the device, ``None`` on the CPU."""
        if not self.device.is_cuda:
            return None
        return int(self._torch.cuda.current_stream(self._torch_device).cuda_stream)

    # -- hooks for the engine and the profiler ---------------------------------------------

    def release_cached_memory(self) -> None:
        """Empties torch's CUDA caching allocator (``torch.cuda.empty_cache()``); CPU: no-op."""
        if self.device.is_cuda:
            self._torch.cuda.empty_cache()

    @property
    def supports_cuda_graphs(self) -> bool:
        """True on CUDA: a call can be captured in a ``torch.cuda.CUDAGraph``."""
        return self.device.is_cuda

    def measure_device_memory(
        self, run: Callable[[], object], runs: int
    ) -> DeviceMemoryReading | None:
        """Torch's allocator statistics over ``runs`` calls (CUDA; ``None`` on the CPU).

        The activation is the peak allocated during the calls (``max_memory_allocated`` after
        ``reset_peak_memory_stats``) over what was allocated before them: the model's weights
        and anything else the process holds on the device are excluded.
        """
        if not self.device.is_cuda:
            return None
        cuda = self._torch.cuda
        device = self._torch_device
        baseline = int(cuda.memory_allocated(device))
        cuda.reset_peak_memory_stats(device)
        for _ in range(runs):
            run()
        return DeviceMemoryReading(
            activation_bytes=int(cuda.max_memory_allocated(device)) - baseline,
            allocated_bytes=int(cuda.memory_allocated(device)),
            reserved_bytes=int(cuda.memory_reserved(device)),
            framework_peak_bytes=None,
            method=f"torch peak allocated over the post-load allocated, {runs} calls",
        )

    @property
    def supports_overlapped_upload(self) -> bool:
        """True on CUDA: :meth:`upload_async` copies on a side stream."""
        return self.device.is_cuda

    def upload_async(self, host: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], int]:
        """Enqueues the copy of (pinned) host arrays on a side stream; returns at once.

        The copy runs with ``non_blocking=True`` on a side stream of the model's device (made
        at the first call); the current (compute) stream waits on an event recorded after it,
        so the upload of batch k+1 overlaps the compute of batch k. Each tensor is recorded on
        the compute stream so the allocator does not reuse its memory before compute is done,
        and 4-D inputs are laid out NHWC when ``channels_last`` is on. Off CUDA this is
        :meth:`to_native`.

        Returns:
            The tensors and the side stream's handle (the host memory is free for reuse once
            the work queued there so far has finished).
        """
        if not self.device.is_cuda:
            return super().upload_async(host)
        torch = self._torch
        if self._upload_stream is None:
            self._upload_stream = torch.cuda.Stream(device=self._torch_device)
        side = self._upload_stream
        compute = torch.cuda.current_stream(self._torch_device)
        with torch.cuda.stream(side):
            tensors = {
                k: torch.from_numpy(v).to(self._torch_device, non_blocking=True)
                for k, v in host.items()
            }
            uploaded = torch.cuda.Event()
            uploaded.record(side)
        compute.wait_event(uploaded)
        channels_last = bool(self.options.get("channels_last"))
        out: dict[str, Any] = {}
        for name, tensor in tensors.items():
            tensor.record_stream(compute)  # the allocator must not reuse it before compute ends
            laid_out = tensor
            if channels_last and tensor.dim() == 4:
                laid_out = tensor.contiguous(memory_format=torch.channels_last)
            out[name] = laid_out
        return out, int(side.cuda_stream)


def flatten_outputs(value: Any, name: str, *, top: bool = False) -> Iterator[tuple[str, Any]]:
    """Names the tensors of a module's result: ``output``, ``output_0``..., a dict's keys.

    Args:
        value: The result (a tensor, or nested tuples, lists, namedtuples and dicts of them).
        name: The name of ``value`` (``"output"`` at the top).
        top: Whether ``value`` is the whole result: a dict's keys and a namedtuple's fields
            then name its entries on their own.

    Yields:
        ``(name, leaf)`` for each leaf, in order; nested names are joined with ``_``.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten_outputs(item, str(key) if top else f"{name}_{key}")
    elif isinstance(value, (tuple, list)):
        fields = getattr(value, "_fields", None)  # a namedtuple names its outputs
        for i, item in enumerate(value):
            label = str(fields[i]) if fields else str(i)
            yield from flatten_outputs(item, label if top and fields else f"{name}_{label}")
    else:
        yield name, value


def _batch_size(specs: Sequence[TensorSpec], inputs: Mapping[str, Any]) -> int | None:
    for spec in specs:
        tensor: Any = inputs.get(spec.name)
        if (
            spec.batch_axis is not None
            and hasattr(tensor, "shape")
            and tensor.dim() > spec.batch_axis
        ):
            return int(tensor.shape[spec.batch_axis])
    return None


def _observed_spec(
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    batch: int | None,
    axis: int | None = None,
) -> TensorSpec:
    """An output's spec from its first result: ``axis`` (if known) or the first of batch size."""
    if not shape:
        return TensorSpec(name, (), dtype)
    if axis is None or axis >= len(shape):
        axis = next((i for i, d in enumerate(shape) if d == batch), 0)
    dims = [*shape]
    dims[axis] = None  # type: ignore[call-overload]
    return TensorSpec(name, tuple(dims), dtype, axis)


def _numpy_dtype(dtype: Any) -> np.dtype[Any]:
    text = str(dtype).removeprefix("torch.")
    if text == "bfloat16":
        return np.dtype(np.float32)
    try:
        return np.dtype(text)
    except TypeError:
        return np.dtype(np.float32)
