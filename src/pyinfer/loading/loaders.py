"""Loading models of every common format: format detection by content, and the loaders.

:func:`detect_format` reads a few bytes (or a zip archive's table of contents, or a protobuf's
top-level fields) and decides the format from the content; the file extension only breaks ties
and, where it contradicts the content, earns a logged warning. :func:`load_model` detects the
format, hands the file to the loader of its framework and records the cold-load time in the
returned :class:`~pyinfer.backends.base.Model`.

The loaders, one per framework family, hold options and load files:

* :class:`PyTorchModelLoader`: TorchScript, ``torch.save`` checkpoints (state_dicts with an
  architecture, checkpoint dicts, whole pickled modules on explicit opt-in), ``torch.export``
  programs, and in-memory modules;
* :class:`ONNXModelLoader`: ONNX models through ONNX Runtime;
* :class:`TensorFlowModelLoader`: Keras ``.h5`` and ``.keras``, SavedModel folders and TFLite.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from pyinfer import _core
from pyinfer.backends import frameworks
from pyinfer.backends.base import Device, Model, ModelFormat, parse_device
from pyinfer.errors import (
    CorruptModelError,
    InvalidArgumentError,
    ModelNotFoundError,
    UnknownFormatError,
)

__all__ = [
    "ModelLoader",
    "ONNXModelLoader",
    "PyTorchModelLoader",
    "TensorFlowModelLoader",
    "detect_format",
    "load_model",
]

logger = logging.getLogger(__name__)

#: Extension -> the formats a file with it usually holds (the tie-breaker and the warning check).
_EXTENSIONS: dict[str, frozenset[ModelFormat]] = {
    ".pt": frozenset(
        {
            ModelFormat.TORCHSCRIPT,
            ModelFormat.PYTORCH,
            ModelFormat.PYTORCH_LEGACY,
            ModelFormat.PICKLE,
        }
    ),
    ".pth": frozenset(
        {
            ModelFormat.PYTORCH,
            ModelFormat.PYTORCH_LEGACY,
            ModelFormat.TORCHSCRIPT,
            ModelFormat.PICKLE,
        }
    ),
    ".ckpt": frozenset({ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY}),
    ".bin": frozenset({ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY}),
    ".tar": frozenset({ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY}),
    ".jit": frozenset({ModelFormat.TORCHSCRIPT}),
    ".torchscript": frozenset({ModelFormat.TORCHSCRIPT}),
    ".pt2": frozenset({ModelFormat.TORCH_EXPORT}),
    ".pkl": frozenset({ModelFormat.PICKLE, ModelFormat.PYTORCH, ModelFormat.PYTORCH_LEGACY}),
    ".pickle": frozenset({ModelFormat.PICKLE}),
    ".onnx": frozenset({ModelFormat.ONNX}),
    ".h5": frozenset({ModelFormat.KERAS_H5}),
    ".hdf5": frozenset({ModelFormat.KERAS_H5}),
    ".keras": frozenset({ModelFormat.KERAS}),
    ".tflite": frozenset({ModelFormat.TFLITE}),
    ".lite": frozenset({ModelFormat.TFLITE}),
}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# torch.save's legacy format begins with a protocol-2 pickle of this magic number (a LONG1).
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

# ModelProto's top-level fields -> the protobuf wire type each must have (0 varint, 2 bytes).
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ONNX_GRAPH_FIELD = 7


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            near = sorted(q.name for q in p.parent.iterdir() if q.stem == p.stem)[:5]
            if near:
                hint = f" (did you mean {', '.join(near)}?)"
        raise ModelNotFoundError(f"model path {str(p)!r} does not exist{hint}", path=p)
    return p


def _read_varint(f: BinaryIO) -> int | None:
    result = 0
    for shift in range(0, 64, 7):
        byte = f.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
    return None


def _onnx_verdict(f: BinaryIO, size: int) -> str:
    """Walks a file's top-level protobuf fields.

    Returns:
        ``"onnx"``, ``"truncated"`` (a field runs past the end), ``"no-graph"`` (well-formed
        ModelProto fields but no graph) or ``"no"``.
    """
    f.seek(0)
    seen: set[int] = set()
    while True:
        pos = f.tell()
        if pos == size:
            if _ONNX_GRAPH_FIELD in seen:
                return "onnx"
            return "no-graph" if 1 in seen and len(seen) >= 2 else "no"
        tag = _read_varint(f)
        if tag is None:
            return "truncated" if len(seen) >= 2 else "no"
        field, wire = tag >> 3, tag & 7
        if _ONNX_MODEL_FIELDS.get(field) != wire:
            return "no"
        if wire == 0:
            if _read_varint(f) is None:
                return "truncated" if len(seen) >= 2 else "no"
        else:
            length = _read_varint(f)
            if length is None or f.tell() + length > size:
                # A field that runs past the end: a cut-off ONNX file if what came before
                # looked like one (ir_version first, as every writer puts it).
                return "truncated" if seen and 1 in seen else "no"
            f.seek(length, 1)
        seen.add(field)


def _zip_format(path: Path) -> ModelFormat | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptModelError(
            f"{path} is a damaged zip archive ({exc}); TorchScript, torch.save, torch.export "
            "and Keras files are zip archives: the file is probably truncated, so save or copy "
            "it again",
            path=path,
        ) from exc
    except NotImplementedError as exc:
        # zipfile refuses a central directory that claims a newer zip version than it reads
        # (a damaged header: torch and Keras write plain version 2.0 archives).
        raise CorruptModelError(
            f"{path} is a damaged zip archive: its directory asks for a zip feature no model "
            f"writer uses ({exc}); TorchScript, torch.save, torch.export and Keras files are "
            "plain zip archives, so this one is damaged: save or copy it again",
            path=path,
        ) from exc
    roots = set(names)
    if {"config.json", "metadata.json"} <= roots or (
        "config.json" in roots and "model.weights.h5" in roots
    ):
        return ModelFormat.KERAS
    tails = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in tails or any(t.startswith("models/") for t in tails):
        return ModelFormat.TORCH_EXPORT
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return ModelFormat.TORCHSCRIPT
    if "data.pkl" in tails:
        return ModelFormat.PYTORCH
    return None


def _content_format(path: Path) -> ModelFormat | None:
    """The format the content says, ``None`` when it matches none."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return ModelFormat.SAVED_MODEL
        return None
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
            if len(head) >= 8 and head[4:8] == b"TFL3":
                return ModelFormat.TFLITE
            if head.startswith(_ZIP_SIGNATURES):
                return _zip_format(path)
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == _HDF5_SIGNATURE:
                    return ModelFormat.KERAS_H5
            if head.startswith(_TORCH_LEGACY_MAGIC):
                return ModelFormat.PYTORCH_LEGACY
            if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                return ModelFormat.PICKLE
            verdict = _onnx_verdict(f, size)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model file {str(path)!r}: {exc}", path=path) from exc
    if verdict == "onnx":
        return ModelFormat.ONNX
    if verdict == "truncated":
        raise CorruptModelError(
            f"{path} starts like an ONNX model but its data stops short of what its headers "
            "announce: the file is truncated; export or copy it again",
            path=path,
        )
    if verdict == "no-graph":
        raise CorruptModelError(
            f"{path} has the header fields of an ONNX model but no graph: it was cut off after "
            "its header or written incompletely; export or copy it again",
            path=path,
        )
    return None


def detect_format(path: str | Path) -> ModelFormat:
    """Detects a model's format from its content.

    The extension is only a tie-breaker: a ``.onnx`` file holding a TorchScript archive is
    TorchScript (with a warning in the log). ``saved_model.pb`` itself stands for its folder.

    Args:
        path: A model file, or a SavedModel folder.

    Returns:
        The detected format.

    Raises:
        ModelNotFoundError: If the path does not exist or cannot be read.
        CorruptModelError: If the content is a known container that is damaged (an empty file,
            a truncated zip archive or ONNX protobuf).
        UnknownFormatError: If the content matches no known format; the message lists them.
    """
    p = _resolve(path)
    if p.is_file() and p.name in {"saved_model.pb", "saved_model.pbtxt"}:
        p = p.parent
    if p.is_file() and p.stat().st_size == 0:
        raise CorruptModelError(f"model file {str(p)!r} is empty (0 bytes)", path=p)
    fmt = _content_format(p)
    suffix = p.suffix.lower()
    expected = _EXTENSIONS.get(suffix)
    if fmt is None:
        if p.is_dir():
            raise UnknownFormatError(
                f"{p} is a folder but not a TensorFlow SavedModel (no saved_model.pb in it); "
                "pass a model file, or the SavedModel folder itself",
                path=p,
            )
        said = ""
        if expected:
            said = f" although its extension '{suffix}' suggests {_names(expected)}"
        raise UnknownFormatError(
            f"{p} is not a model file pyinfer recognises{said}: its content matches none of "
            "TorchScript, torch.save (zip or legacy), torch.export (.pt2), ONNX, Keras "
            "(.h5/.keras), TensorFlow SavedModel (a folder) or TFLite",
            path=p,
        )
    if expected is not None and fmt not in expected:
        logger.warning(
            "%s has extension '%s' (%s) but its content is %s; loading it as %s",
            p,
            suffix,
            _names(expected),
            fmt.value,
            fmt.value,
        )
    return fmt


def _names(formats: frozenset[ModelFormat]) -> str:
    return " or ".join(sorted(f.value for f in formats))


class ModelLoader:
    """Base of the loaders: options held once, applied to every file loaded.

    Subclasses set :attr:`formats` and implement :meth:`_load`.

    Args:
        **options: Framework options, checked when a model is loaded (see each loader).
    """

    framework: ClassVar[str] = ""
    formats: ClassVar[frozenset[ModelFormat]] = frozenset()

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    def load(
        self,
        path: str | Path,
        *,
        format: ModelFormat | str | None = None,
        device: str | Device | None = "cpu",
        name: str | None = None,
    ) -> Model:
        """Loads one model file or folder.

        Args:
            path: The model.
            format: Skip detection and load as this format.
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            name: Name for reports; the file's stem by default.

        Returns:
            The loaded model, with :attr:`~pyinfer.backends.base.Model.load_time_s` set.

        Raises:
            ModelLoadError: Or a subclass, naming the path and what is wrong.
            FrameworkNotInstalledError: If the framework is missing.
            DeviceError: If the device cannot be used.
        """
        start_ns = _core.now_ns()
        imports_before = frameworks.import_seconds()
        p = _resolve(path)
        fmt = _coerce_format(format) if format is not None else detect_format(p)
        if fmt not in self.formats:
            raise InvalidArgumentError(
                f"{type(self).__name__} cannot load {fmt.value} models ({p}); it loads "
                f"{_names(self.formats)}: use load_model() to pick the loader from the content"
            )
        if fmt is ModelFormat.SAVED_MODEL and p.is_file():
            p = p.parent
        model = self._load(p, fmt, parse_device(device), name or _default_name(p))
        import_s = frameworks.import_seconds() - imports_before
        model.import_time_s = import_s
        model.load_time_s = max(0.0, (_core.now_ns() - start_ns) / 1e9 - import_s)
        logger.info(
            "loaded %s (%s) on %s in %.3f s (+%.3f s framework import)",
            p,
            fmt.value,
            model.device,
            model.load_time_s,
            import_s,
        )
        return model

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        raise NotImplementedError


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".onnx.data",):
        name = name.removesuffix(suffix)
    return Path(name).stem if path.is_file() else path.name


def _coerce_format(fmt: ModelFormat | str) -> ModelFormat:
    if isinstance(fmt, ModelFormat):
        return fmt
    try:
        return ModelFormat(str(fmt).strip().lower())
    except ValueError:
        known = ", ".join(f.value for f in ModelFormat)
        raise InvalidArgumentError(f"unknown model format {fmt!r}; known: {known}") from None


class PyTorchModelLoader(ModelLoader):
    """Loads TorchScript, ``torch.save`` files, ``torch.export`` programs and in-memory modules.

    Options (all keyword arguments of the constructor or of :func:`load_model`):

    * ``architecture``: for a state_dict or checkpoint, the module to fill: an ``nn.Module``
      instance, a factory callable, or an import string such as
      ``"torchvision.models:resnet50"`` (called with ``architecture_kwargs``);
    * ``strict`` (default ``True``): missing or unexpected keys are an error;
    * ``use_ema`` (default ``False``) / ``state_dict_key``: which checkpoint entry holds the
      weights;
    * ``trust_code`` (default ``False``): allow unpickling a whole model object (or a
      ``torch.export`` archive holding pickled objects), which runs code from the file; only
      for files you trust;
    * ``input_shapes`` / ``input_dtypes``: declare inputs a module does not describe itself;
    * ``channels_last``, ``freeze``, ``optimize``, ``num_threads``: speed-ups, see
      :mod:`pyinfer.backends.torch_backend`.
    """

    framework = "torch"
    formats = frozenset(
        {
            ModelFormat.TORCHSCRIPT,
            ModelFormat.PYTORCH,
            ModelFormat.PYTORCH_LEGACY,
            ModelFormat.PICKLE,
            ModelFormat.TORCH_EXPORT,
        }
    )

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import torch_backend

        return torch_backend.load(path, fmt, device, name=name, **self.options)

    def from_module(
        self,
        module: Any,
        *,
        device: str | Device | None = "cpu",
        name: str | None = None,
    ) -> Model:
        """Wraps an in-memory ``torch.nn.Module`` (or scripted module) as a :class:`Model`.

        Args:
            module: The module.
            device: Where to run it.
            name: Name for reports (the class name by default).

        Returns:
            The model, with the same defaults applied as for a file.
        """
        from pyinfer.backends import torch_backend

        start_ns = _core.now_ns()
        model = torch_backend.from_module(
            module, parse_device(device), name=name or type(module).__name__, **self.options
        )
        model.load_time_s = (_core.now_ns() - start_ns) / 1e9
        return model


class ONNXModelLoader(ModelLoader):
    """Loads ONNX models into ONNX Runtime sessions.

    Options: ``providers`` (explicit list, overrides the device's choice), ``allow_fallback``
    (default ``False``: asking for CUDA and getting the CPU is an error, not a warning),
    ``intra_op_threads`` (default: physical cores), ``inter_op_threads``,
    ``graph_optimization`` (``"all"`` by default, ``"extended"``, ``"basic"``, ``"disable"``),
    ``input_shapes`` (fix symbolic dimensions), ``provider_options``.
    """

    framework = "onnxruntime"
    formats = frozenset({ModelFormat.ONNX})

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import onnx_backend

        return onnx_backend.load(path, fmt, device, name=name, **self.options)


class TensorFlowModelLoader(ModelLoader):
    """Loads Keras (``.h5``, ``.keras``), SavedModel folders and TFLite files.

    Options: ``signature`` (SavedModel, default ``"serving_default"``), ``num_threads``
    (TFLite, default: physical cores), ``trust_code`` (Keras lambda layers and non-modeling
    Keras functions, SavedModel and TFLite ops that write files or call Python; default
    ``False``), ``custom_objects``, ``call_mode`` (Keras: ``"function"``, a
    ``tf.function`` around the model's call, by default; ``"direct"`` or ``"predict"``).
    """

    framework = "tensorflow"
    formats = frozenset(
        {ModelFormat.KERAS_H5, ModelFormat.KERAS, ModelFormat.SAVED_MODEL, ModelFormat.TFLITE}
    )

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import tf_backend

        return tf_backend.load(path, fmt, device, name=name, **self.options)


_LOADERS: dict[str, Callable[..., ModelLoader]] = {
    "torch": PyTorchModelLoader,
    "onnx": ONNXModelLoader,
    "tensorflow": TensorFlowModelLoader,
}


def load_model(
    path: str | Path,
    format: ModelFormat | str | None = None,
    device: str | Device | None = "cpu",
    *,
    name: str | None = None,
    **options: Any,
) -> Model:
    """Loads a model of any supported format, detected from the file's content.

    Args:
        path: A model file, or a TensorFlow SavedModel folder.
        format: Skip detection and load as this format (a :class:`ModelFormat` or its value,
            such as ``"onnx"``).
        device: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
        name: Name for reports; the file's stem by default.
        **options: Options of the framework's loader (see :class:`PyTorchModelLoader`,
            :class:`ONNXModelLoader`, :class:`TensorFlowModelLoader`); unknown ones are an error.

    Returns:
        The loaded model, in inference mode, with its cold-load time recorded.

    Raises:
        ModelLoadError: Or a subclass (:class:`~pyinfer.errors.ModelNotFoundError`,
            :class:`~pyinfer.errors.UnknownFormatError`,
            :class:`~pyinfer.errors.CorruptModelError`,
            :class:`~pyinfer.errors.ArchitectureError`,
            :class:`~pyinfer.errors.UntrustedModelError`), naming the path and the fix.
        FrameworkNotInstalledError: If the model's framework is not installed.
        DeviceError: If the device cannot be used.
        InvalidArgumentError: On an unknown format name or option.
    """
    p = _resolve(path)
    fmt = _coerce_format(format) if format is not None else detect_format(p)
    loader = _LOADERS[fmt.framework](**options)
    return loader.load(p, format=fmt, device=device, name=name)
