"""The PyTorch backend: TorchScript, ``torch.save`` checkpoints, pickles, ``torch.export``.

:func:`load` turns a file into a :class:`TorchModel`; :func:`from_module` wraps an in-memory
module. Only this module imports torch (through :func:`~pyinfer.backends.frameworks.import_torch`).

Safety. Every ``torch.save`` file is read with ``torch.load(..., weights_only=True)`` first, which
refuses to import anything but tensors and plain containers. A file that needs more (a whole
pickled module, or a malicious payload) raises :class:`~pyinfer.errors.UntrustedModelError`
unless the caller passed ``trust_code=True``; only then is it unpickled in full. A plain pickle
is never unpickled without ``trust_code=True``: its opcodes are only scanned (which runs
nothing, :func:`pickle_globals`) to name the code it would import. ``torch.export.load`` unpickles
parts of a ``.pt2`` archive in full and loads AOTInductor libraries, so every pickle in the archive
is scanned first (:func:`export_archive_code`) and one that imports more than ``weights_only``
allows, or a compiled library, needs ``trust_code=True``. ``torch.jit.load`` reads TorchScript
pickles with its own C++ unpickler, which resolves TorchScript types only and never calls Python.
An architecture is only ever imported from the caller's ``architecture=``, never from a name
stored in a checkpoint.

Checkpoints. A state_dict is matched against an architecture (a module instance, a factory or an
import string ``"pkg.mod:attr"``). Checkpoint dicts are searched for their weights under
``state_dict``, ``model_state_dict``, ``model``, ``net``, ``network`` and ``weights`` (or the key
given as ``state_dict_key``); with ``use_ema=True``, under the EMA keys ``ema``, ``model_ema``,
``state_dict_ema`` and ``ema_state_dict`` instead. The main weights are the default because they
are what the checkpoint's author saved as "the model" and EMA weights are absent from most
checkpoints; the model records ``ema_available`` so reports can say when a choice existed. Other
entries (optimizer, scheduler, epoch, ...) are ignored and listed in the load report. Prefixes
``module.`` (DataParallel/DDP) and ``_orig_mod.`` (``torch.compile``) are stripped when every key
has them and the architecture's keys do not.

Speed defaults (each switchable and recorded in :attr:`TorchModel.options`):

* ``channels_last`` (default: on for modules with 2-D convolutions on the CPU): weights and
  4-D inputs in NHWC memory order, which oneDNN runs faster (see
  ``benchmarks/bench_torch_defaults.py``); off by default on CUDA, where the gain depends on the
  dtype and the GPU and has not been measured;
* ``freeze`` / ``optimize`` (TorchScript only, default on): ``torch.jit.freeze`` then
  ``torch.jit.optimize_for_inference``; where an example input can be built the outputs are
  compared with the plain module's, and a failure or a deviation falls back to the plain module
  with a logged warning;
* ``num_threads``: torch's intra-op thread count (left as torch sets it unless given; the count
  in effect is recorded).

Outputs. A tensor is ``output``; a tuple or list gives ``output_0``, ``output_1``, ...; a dict
gives its keys in order (nested containers join the names with ``_``). Output specs of a
``torch.export`` program come from its graph. For other modules they are found by running the
model at load on random inputs of the declared shapes (``input_shapes``): once at batch 1 and,
when the batch is dynamic, once at batch 2, so an output dimension that follows the input batch
is marked ``"batch"``. Without declared shapes nothing is run at load and the outputs are
recorded from the first call.

Size. :attr:`~pyinfer.backends.base.Model.parameter_count` counts the scalars of the parameters
(each shared tensor once); :attr:`~pyinfer.backends.base.Model.parameter_bytes` is the bytes of
the parameters and buffers (BatchNorm statistics included), both measured before freezing.
"""

from __future__ import annotations

import _compat_pickle
import dataclasses
import importlib
import inspect
import io
import json
import logging
import lzma
import pickle
import pickletools
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, Any

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
    ArchitectureError,
    CorruptModelError,
    CudaUnavailableError,
    DeviceError,
    InferenceError,
    InvalidArgumentError,
    ModelLoadError,
    PyinferError,
    UntrustedModelError,
    as_out_of_memory,
)

__all__ = ["KNOWN_OPTIONS", "LoadReport", "TorchModel", "from_module", "load"]

logger = logging.getLogger(__name__)

#: Every option :func:`load` and :func:`from_module` accept.
KNOWN_OPTIONS = frozenset(
    {
        "architecture",
        "architecture_kwargs",
        "strict",
        "trust_code",
        "use_ema",
        "state_dict_key",
        "input_shapes",
        "input_dtypes",
        "channels_last",
        "freeze",
        "optimize",
        "num_threads",
    }
)

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
_EMA_KEYS = ("ema", "model_ema", "state_dict_ema", "ema_state_dict")
_PREFIXES = ("module.", "_orig_mod.")
_REPORT_SHOWN = 5
_TRUST_HINT = (
    "unpickling it would run code stored in the file, which can do anything your user can "
    "(delete files, steal credentials). If you trust where the file came from, load it with "
    "trust_code=True (CLI: --trust-code); better, save only the weights "
    "(torch.save(model.state_dict(), path)) and load them with architecture=..."
)
_FREEZE_RTOL = 1e-3
_FREEZE_ATOL = 1e-4


# -- the model ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """How a state_dict fitted its architecture.

    Attributes:
        missing_keys: Keys the architecture has and the checkpoint lacks.
        unexpected_keys: Keys the checkpoint has and the architecture lacks.
        shape_mismatches: ``(key, checkpoint shape, architecture shape)`` for each key in both
            whose shapes differ.
        stripped_prefixes: Prefixes removed from every key (``module.``, ``_orig_mod.``).
        source_key: The checkpoint entry the weights came from (``None`` for a bare
            state_dict).
        ignored_keys: Other top-level checkpoint entries (optimizer, epoch, ...).
    """

    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    shape_mismatches: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    stripped_prefixes: tuple[str, ...] = ()
    source_key: str | None = None
    ignored_keys: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every key matched in name and shape."""
        return not (self.missing_keys or self.unexpected_keys or self.shape_mismatches)

    def summary(self) -> str:
        """The problems in one line: counts and the first few keys of each kind."""
        parts = []
        if self.missing_keys:
            parts.append(f"{len(self.missing_keys)} missing key(s) ({_few(self.missing_keys)})")
        if self.unexpected_keys:
            parts.append(
                f"{len(self.unexpected_keys)} unexpected key(s) ({_few(self.unexpected_keys)})"
            )
        if self.shape_mismatches:
            shown = [
                f"{k}: checkpoint {tuple(a)} vs architecture {tuple(b)}"
                for k, a, b in self.shape_mismatches
            ]
            parts.append(f"{len(self.shape_mismatches)} shape mismatch(es) ({_few(shown)})")
        return "; ".join(parts) if parts else "all keys matched"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as recorded in ``model.options["load_report"]``."""
        return {
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
            "shape_mismatches": [
                {"key": k, "checkpoint": list(a), "architecture": list(b)}
                for k, a, b in self.shape_mismatches
            ],
            "stripped_prefixes": list(self.stripped_prefixes),
            "source_key": self.source_key,
            "ignored_keys": list(self.ignored_keys),
        }


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_REPORT_SHOWN])
    return shown + (f", ... and {len(items) - _REPORT_SHOWN} more" if len(items) > 5 else "")


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
        name: str,
        format: ModelFormat,
        device: Device,
        path: Path | None,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        parameter_count: int,
        parameter_bytes: int,
        options: Mapping[str, Any],
        keyword_inputs: Sequence[str] = (),
        load_report: LoadReport | None = None,
    ) -> None:
        super().__init__(
            name=name,
            format=format,
            framework="torch",
            device=device,
            path=path,
            inputs=inputs,
            outputs=outputs,
            parameter_count=parameter_count,
            parameter_bytes=parameter_bytes,
            options=options,
        )
        self.module = module
        self.load_report = load_report
        self._torch = torch_mod
        self._torch_device = torch_mod.device(str(device))
        self._keyword_inputs = frozenset(keyword_inputs)

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
            # Shapes were not declared at load: record what the first run gives.
            self.outputs = tuple(
                TensorSpec(n, (None, *t.shape[1:]) if t.dim() else (), _numpy_dtype(t.dtype))
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
            for name, t in inputs.items()
            if hasattr(t, "shape")
        )
        specs = ", ".join(f"{s.name} {s.shape_text()} {s.dtype}" for s in self.inputs)
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
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


def flatten_outputs(value: Any, name: str, *, top: bool = False) -> Iterator[tuple[str, Any]]:
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


# -- entry points ------------------------------------------------------------------------------


def load(path: Path, fmt: ModelFormat, device: Device, *, name: str, **options: Any) -> Model:
    """Loads a torch model file.

    Args:
        path: The file.
        fmt: Its format: TorchScript, ``torch.save`` (zip or legacy), plain pickle or
            ``torch.export``.
        device: Where to run it.
        name: Name for reports.
        **options: See :data:`KNOWN_OPTIONS` and the module docstring: ``architecture``,
            ``architecture_kwargs``, ``strict`` (default ``True``), ``trust_code`` (default
            ``False``), ``use_ema`` (default ``False``), ``state_dict_key``, ``input_shapes``,
            ``input_dtypes``, ``channels_last`` (default: auto), ``freeze`` and ``optimize``
            (TorchScript, default ``True``), ``num_threads``.

    Returns:
        The model, in eval and inference mode on ``device``.

    Raises:
        InvalidArgumentError: On an unknown option or a bad option value.
        UntrustedModelError: If loading would run code from the file and ``trust_code`` is not
            set.
        CorruptModelError: If the file is damaged or truncated.
        ArchitectureError: If weights come without an architecture or do not fit it.
        DeviceError: If the device cannot be used (``CudaUnavailableError`` without CUDA).
    """
    opts = _check_options(options)
    torch = frameworks.import_torch()
    tdev = _torch_device(torch, device)
    _apply_threads(torch, opts)
    report: LoadReport | None = None
    ema_available = False
    if fmt is ModelFormat.TORCHSCRIPT:
        module = _load_torchscript(torch, path, tdev)
    elif fmt is ModelFormat.TORCH_EXPORT:
        module = _load_export(torch, path, tdev, trust=bool(opts.get("trust_code", False)))
    elif fmt in {ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY, ModelFormat.PICKLE}:
        obj = _load_pickled(torch, path, fmt, tdev, trust=bool(opts.get("trust_code", False)))
        module, report, ema_available = _module_from_object(torch, obj, path, opts)
    else:
        raise InvalidArgumentError(f"the torch backend cannot load {fmt.value} models ({path})")
    if fmt in {ModelFormat.TORCHSCRIPT, ModelFormat.TORCH_EXPORT} and "architecture" in opts:
        logger.warning(
            "%s is a %s model, which carries its own architecture; ignoring architecture=%r",
            path,
            fmt.value,
            opts["architecture"],
        )
    return _build(
        torch,
        module,
        fmt=fmt,
        device=device,
        tdev=tdev,
        path=path,
        name=name,
        opts=opts,
        report=report,
        ema_available=ema_available,
    )


def from_module(module: Any, device: Device, *, name: str, **options: Any) -> Model:
    """Wraps an in-memory module as a :class:`TorchModel`.

    The module is moved to ``device`` and switched to eval mode in place. A ``ScriptModule`` is
    treated like a loaded TorchScript file (frozen by default, on a copy), an exported
    ``torch.export.ExportedProgram`` like a ``.pt2`` file.

    Args:
        module: An ``nn.Module``, ``ScriptModule`` or ``ExportedProgram``.
        device: Where to run it.
        name: Name for reports.
        **options: As for :func:`load`, less the checkpoint options (``architecture``, ...).

    Returns:
        The model.

    Raises:
        InvalidArgumentError: If ``module`` is not a torch module, or on a bad option.
        DeviceError: If the device cannot be used.
    """
    opts = _check_options(options)
    torch = frameworks.import_torch()
    tdev = _torch_device(torch, device)
    _apply_threads(torch, opts)
    fmt = ModelFormat.PYTORCH
    if isinstance(module, torch.jit.ScriptModule):
        fmt = ModelFormat.TORCHSCRIPT
        module = module.to(tdev)
    elif _is_exported_program(module):
        fmt = ModelFormat.TORCH_EXPORT
        module = _exported_module(module, tdev)
    elif isinstance(module, torch.nn.Module):
        module = module.to(tdev)
    else:
        raise InvalidArgumentError(
            f"from_module takes a torch.nn.Module, ScriptModule or ExportedProgram, not "
            f"{type(module).__name__}"
        )
    return _build(torch, module, fmt=fmt, device=device, tdev=tdev, path=None, name=name, opts=opts)


# -- options and device ------------------------------------------------------------------------


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, KNOWN_OPTIONS, loader="PyTorch loader", path=None)
    kwargs = options.get("architecture_kwargs")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InvalidArgumentError(
            f"architecture_kwargs must be a dict of keyword arguments, not {type(kwargs).__name__}"
        )
    threads = options.get("num_threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidArgumentError(f"num_threads must be a positive int, not {threads!r}")
    for flag in ("strict", "trust_code", "use_ema", "freeze", "optimize"):
        if flag in options and not isinstance(options[flag], bool):
            raise InvalidArgumentError(f"{flag} must be True or False, not {options[flag]!r}")
    cl = options.get("channels_last")
    if cl is not None and not isinstance(cl, bool):
        raise InvalidArgumentError(f"channels_last must be True, False or None, not {cl!r}")
    return dict(options)


def _torch_device(torch: ModuleType, device: Device) -> Any:
    if not device.is_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = (
            "this torch build has no CUDA support (install a CUDA build of torch)"
            if build is None
            else f"torch (built for CUDA {build}) finds no usable GPU or driver"
        )
        raise CudaUnavailableError(
            f"device {device} was asked for but {why}; use device='cpu' to run on the CPU"
        )
    count = int(torch.cuda.device_count())
    if device.index >= count:
        raise DeviceError(
            f"device {device} does not exist: torch sees {count} GPU(s) "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", device.index)


def _apply_threads(torch: ModuleType, opts: Mapping[str, Any]) -> None:
    threads = opts.get("num_threads")
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))


# -- reading files -----------------------------------------------------------------------------


def _corrupt(path: Path, what: str, exc: BaseException) -> CorruptModelError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else type(exc).__name__
    return CorruptModelError(
        f"{path} could not be read as a {what} ({type(exc).__name__}: {detail[:200]}); the "
        "file is damaged or truncated: save, export or copy it again",
        path=path,
    )


#: What reading a damaged zip archive's members raises: bad headers and checksums, damaged
#: compressed data, compression methods or encryption Python's zipfile does not read.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


class _Opaque:
    """Whatever a pickle builds that :func:`_check_archive_tensors` does not look at.

    Takes any arguments, state, items and appends, so the pickle's structure is walked without
    importing or running anything it names.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return _Opaque()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    """A tensor storage a TorchScript pickle refers to: its record, dtype and element count."""

    key: str
    type_name: str
    numel: Any = None


#: The rebuild functions whose first arguments are (storage, offset, size, stride).
_REBUILD_TENSOR = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_qtensor"})


class _TensorLayoutReader(pickle.Unpickler):
    """Reads the tensors a TorchScript pickle declares, importing nothing.

    Every global resolves to :class:`_Opaque` except the tensor rebuild functions, which record
    ``(storage, offset, size, stride)``; storages come back as :class:`_StorageRef`.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.tensors: list[tuple[Any, Any, Any, Any]] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in _REBUILD_TENSOR:
            return self._rebuild
        if module == "torch" and name.endswith("Storage"):
            return name
        return _Opaque

    def _rebuild(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Opaque:
        self.tensors.append((storage, offset, size, stride))
        return _Opaque()

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            return _StorageRef(str(pid[2]), str(pid[1]), pid[4] if len(pid) > 4 else None)
        raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}")


def _check_archive_tensors(torch: ModuleType, path: Path) -> None:
    """Checks that every tensor of a TorchScript archive lies inside its storage record.

    ``torch.jit.load`` builds each tensor of ``data.pkl`` and ``constants.pkl`` over the bytes of
    its record (``data/N``, ``constants/N``) without checking that the record holds the
    tensor's extent; a short or missing record, or a size, stride or offset damaged in the
    pickle, gives a tensor that reads past its memory and crashes the interpreter when the
    module runs. This walks the pickles first (importing nothing) and refuses such a file.

    Raises:
        CorruptModelError: If a pickle cannot be read, or a tensor does not fit its record.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos:
                return  # torch.jit.load says what is wrong with an empty archive
            prefix = infos[0].filename.split("/", 1)[0]
            sizes = {i.filename: i.file_size for i in infos}
            pickles = {
                name: archive.read(f"{prefix}/{name}.pkl")
                for name in ("data", "constants")
                if f"{prefix}/{name}.pkl" in sizes
            }
    except _ZIP_ERRORS as exc:
        raise _corrupt(path, "TorchScript archive", exc) from exc
    for name, data in pickles.items():
        reader = _TensorLayoutReader(data)
        try:
            reader.load()
        except Exception as exc:
            raise _corrupt(path, f"TorchScript archive (its {name}.pkl)", exc) from exc
        for layout in reader.tensors:
            # torch.jit.load reads the storages of data.pkl from data/, of constants.pkl
            # from constants/.
            problem = _tensor_layout_problem(torch, layout, sizes, f"{prefix}/{name}/")
            if problem:
                raise CorruptModelError(
                    f"{path} is a damaged TorchScript archive: a tensor of its {name}.pkl "
                    f"{problem}; save the module again (torch.jit.save)",
                    path=path,
                )


def _storage_itemsize(torch: ModuleType, type_name: str) -> int | None:
    """Bytes per element of a pickled storage type (``FloatStorage``, ``Float8_e4m3fnStorage``)."""
    try:
        return int(torch.storage._get_dtype_from_pickle_storage_type(type_name).itemsize)
    except (KeyError, AttributeError):
        pass
    # TorchScript names a storage after the C++ scalar type, which Python's table lacks for the
    # newer dtypes (UInt16, Float8_e4m3fn, Bits8, ...): their torch names, lower-cased.
    wanted = type_name.removesuffix("Storage").lower()
    wanted = {"complexhalf": "complex32"}.get(wanted, wanted)
    dtype = vars(torch).get(wanted)  # vars: never torch's lazy __getattr__ imports
    return int(dtype.itemsize) if isinstance(dtype, torch.dtype) else None


def _tensor_layout_problem(
    torch: ModuleType,
    layout: tuple[Any, Any, Any, Any],
    records: Mapping[str, int],
    folder: str,
) -> str | None:
    """What is wrong with one tensor's ``(storage, offset, size, stride)``; ``None`` if it fits.

    Args:
        torch: The torch module.
        layout: As the pickle declares it.
        records: The archive's member sizes by name.
        folder: Where the pickle's storage records lie (``"archive/data/"``).
    """
    storage, offset, size, stride = layout
    if not isinstance(storage, _StorageRef):
        return "has no storage record"
    dims = [offset, *size, *stride] if isinstance(size, tuple) and isinstance(stride, tuple) else []
    if not dims or len(size) != len(stride) or not all(isinstance(d, int) for d in dims):
        return f"has a damaged layout (size {size!r}, stride {stride!r}, offset {offset!r})"
    if offset < 0 or any(d < 0 for d in size) or any(d < 0 for d in stride):
        return f"has a negative size, stride or offset ({size}, {stride}, {offset})"
    itemsize = _storage_itemsize(torch, storage.type_name)
    if itemsize is None:
        return None  # a type torch.jit.load does not know either: it refuses the file itself
    record = folder + storage.key
    if record not in records:
        return f"refers to a storage record {record!r} the archive lacks"
    held = records[record]
    if isinstance(storage.numel, int) and not 0 <= storage.numel * itemsize <= held:
        # torch.jit.load sizes the storage by this count, over the record's bytes.
        return (
            f"has a storage of {storage.numel} elements ({storage.numel * itemsize} bytes) in "
            f"its record {record!r}, which holds {held} bytes"
        )
    if 0 in size:
        return None
    needed = (offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) + 1) * itemsize
    if needed > held:
        return (
            f"of shape {tuple(size)} needs {needed} bytes of its storage record {record!r}, "
            f"which holds {held}"
        )
    return None


def _load_torchscript(torch: ModuleType, path: Path, tdev: Any) -> Any:
    _check_archive_tensors(torch, path)
    try:
        with warnings.catch_warnings():
            # torch 2.14 deprecates torch.jit.* with a FutureWarning; TorchScript files still
            # load and run, and are a format users have.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            module = torch.jit.load(str(path), map_location=tdev)
    except Exception as exc:
        raise _corrupt(path, "TorchScript archive", exc) from exc
    return module


def _load_export(torch: ModuleType, path: Path, tdev: Any, *, trust: bool) -> Any:
    code = export_archive_code(torch, path)
    if code:
        if not trust:
            raise UntrustedModelError(
                f"{path} is a torch.export archive that holds code: {_few(code)}; "
                "torch.export.load would run it while loading (it unpickles such entries in "
                f"full), and {_TRUST_HINT}",
                path=path,
            )
        logger.warning("loading %s, which holds code, in full (trust_code=True)", path)
    frameworks.ensure_triton_safe()
    # torch.export.load logs a full traceback at WARNING before raising on a damaged archive
    # (the error raised below says the same in one line), and its serde module logs the
    # weights_only fallback of a trusted archive with a malformed format string.
    quiet = [logging.getLogger(n) for n in ("torch.export", "torch._export.serde.serialize")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL if q.name != "torch.export" else logging.ERROR)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    calls = getattr(program, "module_call_graph", None)
    if not calls or getattr(calls[0], "signature", None) is None:
        # torch.export.load accepts a program whose call graph lost the signature of its
        # entry point; program.module() then fails on it with an AttributeError.
        raise CorruptModelError(
            f"{path} is a damaged torch.export program (.pt2): its module call graph has no "
            "signature for the entry point (models/*.json was damaged); export it again",
            path=path,
        )
    _check_program_weights(path, program)
    try:
        return _exported_module(program, tdev)
    except Exception as exc:
        # The program deserialised, but torch cannot rebuild a module from it: the graph in
        # the archive (bytes we did not write) contradicts itself.
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc


def _check_program_weights(path: Path, program: Any) -> None:
    """Checks each weight of a loaded ``.pt2`` against the placeholder its graph declares.

    ``torch.export.load`` takes the shapes of the weights from the archive's weight config and
    the graph from ``models/*.json`` without comparing them: a damaged config gives a program
    that loads and fails (or computes garbage) at its first call.

    Raises:
        CorruptModelError: If a weight's shape or dtype differs from its placeholder's.
    """
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    tensors = {**program.state_dict, **program.constants}
    lifted = {
        **sig.inputs_to_parameters,
        **sig.inputs_to_buffers,
        **sig.inputs_to_lifted_tensor_constants,
    }
    for placeholder, fqn in lifted.items():
        node = placeholders.get(placeholder)
        declared = node.meta.get("val") if node is not None else None
        tensor = tensors.get(fqn)
        if declared is None or tensor is None or not hasattr(tensor, "shape"):
            continue  # torch refuses a missing weight itself, with a message naming it
        want = tuple(declared.shape)
        if all(isinstance(d, int) for d in want) and (
            want != tuple(tensor.shape) or declared.dtype != tensor.dtype
        ):
            raise CorruptModelError(
                f"{path} is a damaged torch.export program (.pt2): weight {fqn!r} is stored "
                f"as {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')} but its "
                f"graph expects {want} {str(declared.dtype).removeprefix('torch.')} (the "
                "archive's weight config or graph was damaged); export it again",
                path=path,
            )


_PT2_AOTI_DIR = "data/aotinductor/"
_PT2_PAYLOAD_DIRS = ("data/weights/", "data/constants/")
_PT2_NOT_PICKLED = ("custom_obj_",)  # read by torch's C++ unpickler, which runs no Python
_ZIP_MAGIC = b"PK\x03\x04"


def export_archive_code(torch: ModuleType, path: Path) -> list[str]:
    """What in a ``torch.export`` archive (``.pt2``) would run code when loaded, read safely.

    ``torch.export.load`` unpickles in full (``weights_only=False``) the weights and constants an
    archive marks as pickled, its opaque objects and, when ``weights_only`` loading fails, its
    sample inputs and legacy weight files; it also loads the shared libraries of AOTInductor
    packages. Every entry that is not a raw tensor payload is read here: pickles (plain or inside
    a nested ``torch.save`` archive) with :func:`pickle_globals`, which unpickles nothing.

    Args:
        torch: The torch module.
        path: The archive.

    Returns:
        One description per finding (``"imports os.system (in data/sample_inputs/model.pt)"``,
        ``"a compiled AOTInductor library (data/aotinductor/...)"``); empty when the archive
        holds only the graph and tensors. Globals that torch's ``weights_only`` loader accepts
        (tensor rebuild functions, plain containers) are not code.
    """
    allowed = _weights_only_globals(torch)
    findings: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            raw = _pt2_raw_payloads(archive, infos)
            for info in infos:
                name = info.filename
                if _PT2_AOTI_DIR in name:
                    findings.append(f"a compiled AOTInductor package entry ({name})")
                    continue
                base = name.rsplit("/", 1)[-1]
                if name in raw or name.endswith(".json") or base.startswith(_PT2_NOT_PICKLED):
                    continue
                with archive.open(info) as member:
                    head = member.read(4)
                if head[:1] == b"\x80":
                    with archive.open(info) as member:
                        names = _all_pickle_globals(member)
                elif head == _ZIP_MAGIC:
                    names = _nested_archive_globals(archive.read(info))
                else:
                    continue
                findings.extend(f"imports {g} (in {name})" for g in names if g not in allowed)
    except Exception as exc:  # a damaged archive: zipfile, zlib or EOF errors
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc
    return findings


def _pt2_raw_payloads(archive: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]) -> set[str]:
    """The archive entries its payload configs declare raw tensor bytes (never unpickled)."""
    raw: set[str] = set()
    for info in infos:
        name = info.filename
        folder = next((d for d in _PT2_PAYLOAD_DIRS if d in name), None)
        if folder is None or not name.endswith("_config.json"):
            continue
        try:
            config = json.loads(archive.read(info)).get("config", {})
        except (ValueError, AttributeError):
            continue  # torch will fail on it too; the pickles are still scanned
        prefix = name[: name.index(folder) + len(folder)]
        for entry in config.values() if isinstance(config, dict) else ():
            if not isinstance(entry, dict) or entry.get("use_pickle"):
                continue
            file = str(entry.get("path_name", ""))
            if file.startswith("opaque_obj_"):
                continue  # unpickled with pickle.loads whatever the config says
            raw.add(prefix + file)
    return raw


def _all_pickle_globals(stream: IO[bytes]) -> list[str]:
    """The globals of every pickle in a stream (a legacy ``torch.save`` file holds several)."""
    found: list[str] = []
    for _ in range(8):
        start = stream.tell()
        if not stream.read(1):
            break
        stream.seek(start)
        found.extend(pickle_globals(stream))
        if stream.tell() <= start:
            break
    return list(dict.fromkeys(found))


def _weights_only_globals(torch: ModuleType) -> set[str]:
    """The globals torch's ``weights_only`` unpickler accepts (tensor rebuilders, containers)."""
    unpickler = getattr(torch, "_weights_only_unpickler", None)
    allowed = getattr(unpickler, "_get_allowed_globals", None)
    return set(allowed()) if callable(allowed) else set()


def _file_globals(torch: ModuleType, path: Path) -> list[str]:
    """The globals of a ``torch.save`` file (zip or legacy) beyond ``weights_only``'s, by name.

    Used for the message only: torch's own error names builtins without their module.
    """
    try:
        if zipfile.is_zipfile(path):
            with path.open("rb") as f:
                names = _nested_archive_globals(f.read())
        else:
            with path.open("rb") as f:
                names = _all_pickle_globals(f)
    except OSError:
        return []
    allowed = _weights_only_globals(torch)
    return [n for n in names if n not in allowed]


def _nested_archive_globals(data: bytes) -> list[str]:
    """The globals of the pickles in a ``torch.save`` zip archive held in memory."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            for info in inner.infolist():
                if info.filename.endswith(".pkl"):
                    with inner.open(info) as member:
                        found.extend(pickle_globals(member))
    except (zipfile.BadZipFile, OSError, ValueError):
        return [COMPUTED_GLOBAL]  # an unreadable archive torch might still read: not proven safe
    return list(dict.fromkeys(found))


def _is_exported_program(obj: Any) -> bool:
    return type(obj).__name__ == "ExportedProgram" and hasattr(obj, "graph_signature")


def _exported_module(program: Any, tdev: Any) -> Any:
    module = program.module()
    module = module.to(tdev)
    # The program is kept so its graph gives the input and output specs.
    module._pyinfer_program = program
    return module


def _untrusted_globals(exc: BaseException) -> list[str]:
    text = str(exc)
    found = re.findall(r"GLOBAL ([\w.]+)", text)
    return [g for g in found if not g.endswith(".")]


def _load_pickled(
    torch: ModuleType, path: Path, fmt: ModelFormat, tdev: Any, *, trust: bool
) -> Any:
    if fmt is ModelFormat.PICKLE:
        globals_ = _scan_pickle(path)
        if not trust:
            shown = _few(globals_) if globals_ else "no code"
            raise UntrustedModelError(
                f"{path} is a plain Python pickle that imports {shown}: {_TRUST_HINT}",
                path=path,
            )
        try:
            with path.open("rb") as f:
                obj = pickle.load(f)  # the caller opted in: trust_code=True
        except Exception as exc:
            raise _corrupt(path, "Python pickle", exc) from exc
        return _to_device(torch, obj, tdev)
    what = "torch.save file" + (" (legacy format)" if fmt is ModelFormat.PYTORCH_LEGACY else "")
    try:
        return torch.load(str(path), map_location=tdev, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _untrusted_globals(exc)
        if not names or (fmt is ModelFormat.PYTORCH_LEGACY and _legacy_truncated(path)):
            raise _corrupt(path, what, exc) from exc
        if not trust:
            names = _file_globals(torch, path) or names
            raise UntrustedModelError(
                f"{path} holds more than weights: loading it needs {_few(names)} (a whole "
                f"pickled model or other Python objects), and {_TRUST_HINT}",
                path=path,
            ) from exc
    except Exception as exc:
        if "legacy .tar format" in str(exc) and not trust:
            raise UntrustedModelError(
                f"{path} is a torch.save file in the old tar format (torch < 0.4), which torch "
                f"reads only by unpickling it in full: {_TRUST_HINT}",
                path=path,
            ) from exc
        raise _corrupt(path, what, exc) from exc
    logger.warning("unpickling %s in full, running code from it (trust_code=True)", path)
    try:
        with warnings.catch_warnings():
            # torch warns that weights_only=False is unsafe: the caller chose it knowingly.
            warnings.filterwarnings("ignore", category=FutureWarning)
            return torch.load(str(path), map_location=tdev, weights_only=False)
    except Exception as exc:
        raise _corrupt(path, what, exc) from exc


def _scan_pickle(path: Path) -> list[str]:
    """The globals a pickle would import, read without running it; corrupt files raise."""
    try:
        with path.open("rb") as f:
            return pickle_globals(f, strict=True)
    except Exception as exc:
        raise _corrupt(path, "Python pickle", exc) from exc


#: What :func:`pickle_globals` reports for an import whose name is computed while unpickling.
COMPUTED_GLOBAL = "<a name computed while unpickling>"
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)


def _python3_name(module: str, name: str = "") -> str:
    """``module.name`` as unpickling imports it (``__builtin__.exec`` is ``builtins.exec``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def pickle_globals(stream: IO[bytes], *, strict: bool = False) -> list[str]:
    """The globals (``module.name``) one pickle imports, read without unpickling anything.

    The opcodes are walked with :mod:`pickletools` and the unpickler's stack is followed (memo
    included), so a ``STACK_GLOBAL`` whose names were stored in the memo and fetched later is
    still named; a name built any other way is reported as :data:`COMPUTED_GLOBAL`. Extension
    codes (``EXT1``...) are reported too. Reading stops at the pickle's ``STOP``.

    Args:
        stream: A binary stream at the start of the pickle.
        strict: Raise on a damaged pickle; otherwise return what was found before the damage
            (a real unpickler would have imported those before failing).

    Returns:
        The globals in the order they appear, each once.
    """
    found: list[str] = []
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in {"GLOBAL", "INST"}:
                found.append(_python3_name(*str(arg).split(" ", 1)))
            elif name == "STACK_GLOBAL":
                attr = stack.pop() if stack else None
                module = stack.pop() if stack else None
                named = isinstance(module, str) and isinstance(attr, str)
                found.append(f"{module}.{attr}" if named else COMPUTED_GLOBAL)
                stack.append(None)
                continue
            elif name.startswith("EXT"):
                found.append(f"<extension code {arg}>")
            if name == "MARK":
                marks.append(len(stack))
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in _PUT_OPS:
                memo[arg] = stack[-1] if stack else None
            elif name in _GET_OPS:
                stack.append(memo.get(arg))
            elif name not in {"PROTO", "FRAME", "STOP"}:
                before = opcode.stack_before
                if pickletools.markobject in before:
                    depth = marks.pop() if marks else 0
                    del stack[depth:]
                    below = before.index(pickletools.markobject)
                else:
                    below = len(before)
                if below:
                    del stack[-below:]
                pushed = arg if name in _STRING_OPS else None
                stack.extend(pushed for _ in opcode.stack_after)
    except Exception:
        if strict:
            raise
    return list(dict.fromkeys(found))


def _legacy_truncated(path: Path) -> bool:
    """Whether a legacy torch.save file's pickles (magic, protocol, sys info, data) are cut."""
    try:
        with path.open("rb") as f:
            for _ in range(4):
                for _op in pickletools.genops(f):
                    pass
    except Exception:
        return True
    return False


def _to_device(torch: ModuleType, obj: Any, tdev: Any) -> Any:
    if isinstance(obj, (torch.nn.Module, torch.Tensor)):
        return obj.to(tdev)
    if isinstance(obj, dict):
        return {k: _to_device(torch, v, tdev) for k, v in obj.items()}
    return obj


# -- checkpoints -------------------------------------------------------------------------------


def _is_state_dict(torch: ModuleType, obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _module_from_object(
    torch: ModuleType, obj: Any, path: Path, opts: Mapping[str, Any]
) -> tuple[Any, LoadReport | None, bool]:
    """The module a loaded object stands for, the state_dict report, and whether EMA existed."""
    if isinstance(obj, torch.nn.Module):
        if "architecture" in opts:
            logger.warning("%s holds a whole module; ignoring architecture=...", path)
        return obj, None, False
    if not isinstance(obj, Mapping):
        raise ArchitectureError(
            f"{path} holds a {type(obj).__name__}, not a module, state_dict or checkpoint dict; "
            "pyinfer can only run torch modules",
            path=path,
        )
    ema_keys = [k for k in _EMA_KEYS if k in obj]
    weights, source, ignored = _pick_weights(torch, obj, path, opts, ema_keys)
    if isinstance(weights, torch.nn.Module):
        return weights, LoadReport(source_key=source, ignored_keys=ignored), bool(ema_keys)
    module = _architecture(torch, path, opts)
    report = _fit_state_dict(module, weights, path, opts, source=source, ignored=ignored)
    return module, report, bool(ema_keys)


def _pick_weights(
    torch: ModuleType,
    obj: Mapping[Any, Any],
    path: Path,
    opts: Mapping[str, Any],
    ema_keys: Sequence[str],
) -> tuple[Any, str | None, tuple[str, ...]]:
    if _is_state_dict(torch, obj):
        if opts.get("use_ema"):
            raise ArchitectureError(
                f"use_ema=True but {path} is a bare state_dict with no EMA weights; load it "
                "without use_ema",
                path=path,
            )
        return obj, None, ()
    keys = [str(k) for k in obj]
    explicit = opts.get("state_dict_key")
    if explicit is not None:
        if explicit not in obj:
            raise ArchitectureError(
                f"state_dict_key={explicit!r} is not in the checkpoint {path}; its keys are "
                f"{_few(keys)}",
                path=path,
            )
        candidates: Sequence[str] = (explicit,)
    elif opts.get("use_ema"):
        if not ema_keys:
            raise ArchitectureError(
                f"use_ema=True but the checkpoint {path} has no EMA weights (looked for "
                f"{', '.join(_EMA_KEYS)}; it has {_few(keys)}); load it without use_ema or "
                "name the entry with state_dict_key=...",
                path=path,
            )
        candidates = ema_keys
    else:
        candidates = [k for k in _STATE_DICT_KEYS if k in obj]
    for key in candidates:
        value = _unwrap(torch, obj[key])
        if value is not None:
            if ema_keys and not opts.get("use_ema"):
                logger.info(
                    "%s also has EMA weights (%s); pass use_ema=True to load those instead",
                    path,
                    ", ".join(ema_keys),
                )
            return value, key, tuple(k for k in keys if k != key)
    raise ArchitectureError(
        f"{path} is a checkpoint dict but none of its entries holds model weights (it has "
        f"{_few(keys)}; looked for {', '.join(candidates or _STATE_DICT_KEYS)}); name the entry "
        "with state_dict_key='...'",
        path=path,
    )


def _unwrap(torch: ModuleType, value: Any) -> Any:
    """A state_dict or module inside a checkpoint entry (EMA wrappers nest one level)."""
    if isinstance(value, torch.nn.Module) or _is_state_dict(torch, value):
        return value
    if isinstance(value, Mapping):
        for key in ("state_dict", "module", "model"):
            if key in value and (
                isinstance(value[key], torch.nn.Module) or _is_state_dict(torch, value[key])
            ):
                return value[key]
    return None


def _architecture(torch: ModuleType, path: Path, opts: Mapping[str, Any]) -> Any:
    arch = opts.get("architecture")
    if arch is None:
        raise ArchitectureError(
            f"{path} holds only weights (a state_dict), not the model's architecture; pass the "
            "architecture to fill, e.g. load_model(path, architecture='torchvision.models:"
            "resnet50') or architecture=MyNet (a class, factory or module instance), with "
            "architecture_kwargs={...} for its arguments (CLI: --option "
            "architecture=torchvision.models:resnet50)",
            path=path,
        )
    kwargs = dict(opts.get("architecture_kwargs") or {})
    if isinstance(arch, torch.nn.Module):
        if kwargs:
            logger.warning("architecture is a module instance; ignoring architecture_kwargs")
        return arch
    if isinstance(arch, str):
        factory = _import_factory(arch, path)
        label = arch
    elif callable(arch):
        factory = arch
        label = getattr(arch, "__qualname__", repr(arch))
    else:
        raise InvalidArgumentError(
            f"architecture must be an nn.Module, a callable or an import string "
            f"'pkg.module:attr', not {type(arch).__name__}"
        )
    if _accepts(factory, "weights") and "weights" not in kwargs:
        kwargs["weights"] = None  # never download pretrained weights we would overwrite
    try:
        module = factory(**kwargs)
    except Exception as exc:
        raise ArchitectureError(
            f"building the architecture {label}(**{kwargs!r}) for {path} failed: "
            f"{type(exc).__name__}: {exc}; check architecture_kwargs",
            path=path,
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise ArchitectureError(
            f"the architecture {label} returned a {type(module).__name__}, not a torch.nn.Module",
            path=path,
        )
    return module


def _import_factory(spec: str, path: Path) -> Callable[..., Any]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgumentError(
            f"architecture import string {spec!r} must look like 'package.module:attribute', "
            "e.g. 'torchvision.models:resnet50'"
        )
    frameworks.ensure_triton_safe()  # torchvision and many model zoos import triton
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ArchitectureError(
            f"cannot import the architecture {spec!r} for {path}: {exc}; check the spelling and "
            "that its package is installed",
            path=path,
        ) from exc
    if not callable(obj):
        raise ArchitectureError(
            f"the architecture {spec!r} is a {type(obj).__name__}, not a class or factory",
            path=path,
        )
    return obj  # type: ignore[no-any-return]


def _accepts(func: Callable[..., Any], param: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return param in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _strip_prefixes(
    state: Mapping[str, Any], target: set[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    out = dict(state)
    stripped: list[str] = []
    changed = True
    while changed and out:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in out) and not all(
                k.startswith(prefix) for k in target
            ):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                stripped.append(prefix)
                changed = True
    return out, tuple(stripped)


def _fit_state_dict(
    module: Any,
    state: Mapping[str, Any],
    path: Path,
    opts: Mapping[str, Any],
    *,
    source: str | None,
    ignored: tuple[str, ...],
) -> LoadReport:
    expected = module.state_dict()
    weights, stripped = _strip_prefixes(state, set(expected))
    mismatches = tuple(
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in weights.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    )
    report = LoadReport(
        missing_keys=tuple(k for k in expected if k not in weights),
        unexpected_keys=tuple(k for k in weights if k not in expected),
        shape_mismatches=mismatches,
        stripped_prefixes=stripped,
        source_key=source,
        ignored_keys=ignored,
    )
    strict = opts.get("strict", True)
    if not report.ok:
        if strict:
            raise ArchitectureError(
                f"the weights in {path} do not fit the architecture "
                f"{type(module).__name__}: {report.summary()}; pass the architecture the "
                "checkpoint was saved from (and its architecture_kwargs, such as num_classes), "
                "or strict=False to load the keys that fit",
                path=path,
            )
        logger.warning(
            "loading %s into %s with strict=False: %s",
            path,
            type(module).__name__,
            report.summary(),
        )
    bad = {k for k, _, _ in mismatches}
    fitting = {k: v for k, v in weights.items() if k not in bad}
    module.load_state_dict(fitting, strict=False)
    return report


# -- building the model ------------------------------------------------------------------------


def _build(
    torch: ModuleType,
    module: Any,
    *,
    fmt: ModelFormat,
    device: Device,
    tdev: Any,
    path: Path | None,
    name: str,
    opts: Mapping[str, Any],
    report: LoadReport | None = None,
    ema_available: bool = False,
) -> TorchModel:
    scripted = isinstance(module, torch.jit.ScriptModule)
    program = getattr(module, "_pyinfer_program", None)
    module = module.to(tdev)
    if program is None:
        module.eval()  # exported graphs have their mode baked in and refuse eval()
    for param in module.parameters():  # ScriptModules refuse module.requires_grad_()
        param.requires_grad_(False)
    count, nbytes = _sizes(module)

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    if program is not None:
        specs, outputs, keyword = _export_specs(program, module)
        inputs = _declared(specs, opts, path)
    else:
        names, keyword = _input_names(module, scripted, opts, path)
        inputs = _declared([TensorSpec(n, None) for n in names], opts, path)
        outputs = ()

    has_conv = _has_conv2d(torch, module, program)
    channels_last = opts.get("channels_last")
    if channels_last is None:
        channels_last = has_conv and not device.is_cuda
    options: dict[str, Any] = {
        k: v for k, v in opts.items() if k not in {"architecture", "architecture_kwargs"}
    }
    if "architecture" in opts:
        options["architecture"] = _describe_arch(opts["architecture"])
    if opts.get("architecture_kwargs"):
        options["architecture_kwargs"] = dict(opts["architecture_kwargs"])
    options.update(
        strict=opts.get("strict", True),
        trust_code=opts.get("trust_code", False),
        channels_last=bool(channels_last),
        num_threads=int(torch.get_num_threads()),
        inference_mode=True,
    )
    if report is not None:
        options["load_report"] = report.to_dict()
        options["use_ema"] = bool(opts.get("use_ema", False))
        options["ema_available"] = ema_available
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    model = TorchModel(
        module,
        torch_mod=torch,
        name=name,
        format=fmt,
        device=device,
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=count,
        parameter_bytes=nbytes,
        options=options,
        keyword_inputs=keyword,
        load_report=report,
    )
    example = _example(model)
    reference = None
    need_outputs = not model.outputs
    if example is not None and (need_outputs or scripted):
        reference = _run_example(model, example, path)
        if need_outputs:
            model.outputs = _observed_outputs(model, reference, path)
    if scripted:
        _freeze(torch, model, opts, example, reference)
    else:
        model.options["freeze"] = False
        model.options["optimize"] = False
    return model


def _describe_arch(arch: Any) -> str:
    if isinstance(arch, str):
        return arch
    if callable(arch) and hasattr(arch, "__qualname__"):
        return f"{getattr(arch, '__module__', '?')}.{arch.__qualname__}"
    return type(arch).__name__


def _sizes(module: Any) -> tuple[int, int]:
    seen: set[int] = set()
    count = 0
    nbytes = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            count += p.numel()
            nbytes += p.numel() * p.element_size()
    for b in module.buffers():
        if id(b) not in seen:
            seen.add(id(b))
            nbytes += b.numel() * b.element_size()
    return int(count), int(nbytes)


def _has_conv2d(torch: ModuleType, module: Any, program: Any) -> bool:
    if program is not None:
        return any(
            n.op == "call_function" and "conv2d" in str(n.target) for n in program.graph.nodes
        )
    for sub in module.modules():
        if isinstance(sub, torch.nn.Conv2d) or getattr(sub, "original_name", "") == "Conv2d":
            return True
    return False


def _input_names(
    module: Any, scripted: bool, opts: Mapping[str, Any], path: Path | None
) -> tuple[list[str], list[str]]:
    """Input names from the forward signature, and those to pass by keyword."""
    declared = opts.get("input_shapes")
    declared_names = set(declared) if isinstance(declared, Mapping) else set()
    names: list[str] = []
    keyword: list[str] = []
    skipped = False
    if scripted:
        forward = getattr(module, "forward", None)
        if forward is None or not hasattr(forward, "schema"):
            where = f"{path}" if path is not None else f"the scripted module {module.original_name}"
            methods = ", ".join(module._c._method_names()) or "none"
            raise ModelLoadError(
                f"{where} is a TorchScript module without a forward method (its methods: "
                f"{methods}); pyinfer runs forward: script or trace a module that defines it "
                "(a file that had one is damaged: save it again)",
                path=path,
            )
        for arg in forward.schema.arguments[1:]:
            if arg.has_default_value() and arg.name not in declared_names:
                skipped = True
                continue
            names.append(arg.name)
            if skipped or arg.kwarg_only:
                keyword.append(arg.name)
        return names, keyword
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - forward without a signature
        return ["input"], []
    for p in params:
        if p.kind in {p.VAR_POSITIONAL, p.VAR_KEYWORD}:
            continue
        if p.default is not p.empty and p.name not in declared_names:
            skipped = True
            continue
        names.append(p.name)
        if skipped or p.kind is p.KEYWORD_ONLY:
            keyword.append(p.name)
    if not names:
        raise ModelLoadError(
            f"the module {type(module).__name__} takes no named inputs (forward(*args)); "
            "pyinfer needs named tensor inputs",
            path=path,
        )
    return names, keyword


def _parse_shape(name: str, shape: Any) -> tuple[Dim, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise InvalidArgumentError(
            f"input_shapes[{name!r}] must be a sequence of dimensions (int, None or a name), "
            f"not {shape!r}"
        )
    dims: list[Dim] = []
    for d in shape:
        if d is None or isinstance(d, str):
            dims.append(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            dims.append(int(d))
        else:
            raise InvalidArgumentError(
                f"input_shapes[{name!r}] has a bad dimension {d!r}: use an int >= 0, None or a "
                "name such as 'batch' for a dynamic dimension"
            )
    return tuple(dims)


def _per_input(
    option: str, value: Any, names: Sequence[str], single: Callable[[Any], bool]
) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in names]
        if unknown:
            raise InvalidArgumentError(
                f"{option} names unknown input(s) {', '.join(repr(u) for u in unknown)}; the "
                f"model's inputs are {', '.join(repr(n) for n in names)}"
            )
        return dict(value)
    if single(value):
        if len(names) != 1:
            raise InvalidArgumentError(
                f"{option} without names fits a one-input model, but this one takes "
                f"{', '.join(repr(n) for n in names)}: pass a dict of input name to value"
            )
        return {names[0]: value}
    raise InvalidArgumentError(f"{option} must be a dict of input name to value, not {value!r}")


def _declared(
    specs: Sequence[TensorSpec], opts: Mapping[str, Any], path: Path | None
) -> tuple[TensorSpec, ...]:
    names = [s.name for s in specs]
    shapes = _per_input(
        "input_shapes",
        opts.get("input_shapes"),
        names,
        lambda v: isinstance(v, Sequence) and not isinstance(v, str),
    )
    dtypes = _per_input(
        "input_dtypes",
        opts.get("input_dtypes"),
        names,
        lambda v: not isinstance(v, Mapping),
    )
    out = []
    for spec in specs:
        shape = spec.shape
        if spec.name in shapes:
            shape = _parse_shape(spec.name, shapes[spec.name])
            _check_against_declared(spec, shape, path)
        dtype = spec.dtype
        if spec.name in dtypes:
            try:
                dtype = np.dtype(dtypes[spec.name])
            except TypeError as exc:
                raise InvalidArgumentError(
                    f"input_dtypes[{spec.name!r}] = {dtypes[spec.name]!r} is not a numpy dtype "
                    "(use e.g. 'float32', 'int64' or np.float16)"
                ) from exc
        out.append(TensorSpec(spec.name, shape, dtype))
    return tuple(out)


def _check_against_declared(spec: TensorSpec, shape: tuple[Dim, ...], path: Path | None) -> None:
    """Refuses an ``input_shapes`` entry that contradicts a shape the file declares.

    A ``torch.export`` program declares its inputs; another rank, or another size of one of
    its fixed dimensions, would fail a guard of the program at the first call.
    """
    if spec.shape is None:
        return
    where = f" of {path}" if path is not None else ""
    given = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
    if len(shape) != len(spec.shape):
        raise InvalidArgumentError(
            f"input_shapes[{spec.name!r}] = {given} has {len(shape)} dimensions, but input "
            f"'{spec.name}'{where} is declared {spec.shape_text()}"
        )
    for axis, (declared, size) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(declared, int) and isinstance(size, int) and declared != size:
            raise InvalidArgumentError(
                f"input_shapes[{spec.name!r}] = {given} contradicts input '{spec.name}'{where}, "
                f"declared {spec.shape_text()}: dimension {axis} is fixed at {declared}"
            )


def _numpy_dtype(dtype: Any) -> np.dtype[Any]:
    text = str(dtype).removeprefix("torch.")
    if text == "bfloat16":
        return np.dtype(np.float32)
    try:
        return np.dtype(text)
    except TypeError:
        return np.dtype(np.float32)


def _export_specs(
    program: Any, module: Any
) -> tuple[list[TensorSpec], tuple[TensorSpec, ...], list[str]]:
    from torch.utils import _pytree

    sig = program.graph_signature
    nodes = {n.name: n for n in program.graph.nodes}
    user_inputs = list(sig.user_inputs)
    call_sig = program.module_call_graph[0].signature
    arg_names = list(getattr(call_sig, "forward_arg_names", None) or [])
    if len(arg_names) != len(user_inputs):
        arg_names = [str(n) for n in user_inputs]
    batch_symbols: set[str] = set()
    for n in user_inputs:
        val = nodes[n].meta.get("val")
        if val is not None and val.dim() > 0 and not isinstance(val.shape[0], int):
            batch_symbols.add(str(val.shape[0]))

    def spec(name: str, val: Any) -> TensorSpec:
        if val is None or not hasattr(val, "shape"):
            return TensorSpec(name, None)
        dims: list[Dim] = []
        for d in val.shape:
            if isinstance(d, int):
                dims.append(d)
            else:
                sym = str(d)
                dims.append("batch" if sym in batch_symbols else sym)
        return TensorSpec(name, tuple(dims), _numpy_dtype(val.dtype))

    inputs = [
        spec(a, nodes[n].meta.get("val")) for a, n in zip(arg_names, user_inputs, strict=True)
    ]
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    values = list(out_node.args[0])
    user_vals = [
        v for v, s in zip(values, sig.output_specs, strict=False) if s.kind.name in {"USER_OUTPUT"}
    ] or values
    leaves = list(range(len(user_vals)))
    try:
        tree = _pytree.tree_unflatten(leaves, call_sig.out_spec)
        out_names = [n for n, _ in flatten_outputs(tree, "output", top=True)]
    except Exception:  # pragma: no cover - an out_spec pytree cannot rebuild
        out_names = ["output"] if len(leaves) == 1 else [f"output_{i}" for i in leaves]
    outputs = tuple(
        spec(n, getattr(v, "meta", {}).get("val"))
        for n, v in zip(out_names, user_vals, strict=False)
    )
    return inputs, outputs, []


def _example(model: TorchModel) -> dict[str, np.ndarray] | None:
    if not model.inputs or any(s.shape is None for s in model.inputs):
        return None
    try:
        return model.example_inputs(1)
    except InvalidArgumentError:
        return None  # a dynamic dimension besides the batch: nothing to run at load


def _run_example(model: TorchModel, example: Mapping[str, np.ndarray], path: Path | None) -> Any:
    try:
        return model.run_native(model.to_native(example))
    except Exception as exc:
        shapes = ", ".join(f"{s.name} {s.shape_text()} {s.dtype}" for s in model.inputs)
        raise ModelLoadError(
            f"running {path or model.name} on an example of the declared inputs ({shapes}) "
            f"failed: {type(exc).__name__}: {str(exc)[:300]}; check input_shapes and "
            "input_dtypes",
            path=path,
        ) from exc


def _observed_outputs(
    model: TorchModel,
    first: Mapping[str, Any],
    path: Path | None,
) -> tuple[TensorSpec, ...]:
    shapes = {n: tuple(t.shape) for n, t in first.items()}
    dynamic = model.has_dynamic_batch and all(s.shape for s in model.inputs)
    batch_follows: dict[str, bool] = dict.fromkeys(shapes, False)
    if dynamic:
        twice = model.example_inputs(2)
        second = _run_example(model, twice, path)
        for n, shape in shapes.items():
            other = tuple(second[n].shape)
            batch_follows[n] = bool(shape) and shape[0] == 1 and other[:1] == (2,)
    specs = []
    for n, t in first.items():
        dims: list[Dim] = list(shapes[n])
        if batch_follows[n]:
            dims[0] = "batch"
        specs.append(TensorSpec(n, tuple(dims), _numpy_dtype(t.dtype)))
    return tuple(specs)


def _freeze(
    torch: ModuleType,
    model: TorchModel,
    opts: Mapping[str, Any],
    example: Mapping[str, np.ndarray] | None,
    reference: Mapping[str, Any] | None,
) -> None:
    freeze = opts.get("freeze", True)
    optimize = bool(opts.get("optimize", True)) and freeze
    model.options["freeze"] = False
    model.options["optimize"] = False
    if not freeze:
        return
    plain = model.module
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            fast = torch.jit.freeze(plain)
            if optimize:
                fast = torch.jit.optimize_for_inference(fast)
        model.module = fast
        if example is not None and reference is not None:
            got = model.run_native(model.to_native(example))
            _check_close(torch, reference, got)
    except Exception as exc:
        model.module = plain
        model.options["freeze_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.warning(
            "torch.jit.freeze%s failed for %s, running it unfrozen: %s",
            " + optimize_for_inference" if optimize else "",
            model.path or model.name,
            model.options["freeze_error"],
        )
        return
    model.options["freeze"] = True
    model.options["optimize"] = optimize
    model.options["freeze_verified"] = example is not None


def _check_close(torch: ModuleType, expected: Mapping[str, Any], got: Mapping[str, Any]) -> None:
    for name, ref in expected.items():
        out = got[name]
        if out.shape != ref.shape:
            raise ValueError(f"output {name!r} changed shape {tuple(ref.shape)} -> {out.shape}")
        if ref.is_floating_point():
            scale = max(1.0, float(ref.abs().max()))
            if not torch.allclose(
                out.float(),
                ref.float(),
                rtol=_FREEZE_RTOL,
                atol=_FREEZE_ATOL * scale,
                equal_nan=True,  # NaN weights give NaN outputs, frozen or not
            ):
                diff = float((out.float() - ref.float()).abs().max())
                raise ValueError(
                    f"output {name!r} differs by {diff:.3g} from the unfrozen module's"
                )
        elif not torch.equal(out, ref):
            raise ValueError(f"output {name!r} differs from the unfrozen module's")
