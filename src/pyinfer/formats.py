"""The format registry: every model format pyinfer knows, and every fact about it, in one place.

Each format has one :class:`FormatInfo`: its name (the value of :class:`ModelFormat`, used in
reports and on the command line), a human label, the framework family that loads it and the pip
extra that installs that family, the runtime a loaded model reports as its ``framework``, the
file extensions it usually has, whether the file declares its inputs, whether it is a folder,
and the formats pyinfer can export a model loaded from it to. Every other format table (the
extension tie-breaker of format detection, the loader dispatch, the command line's choices, the
report's labels) is derived from :data:`FORMATS`.

This module imports no framework and not numpy: the command line's ``--help`` can read it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from pyinfer.errors import InvalidArgumentError

__all__ = [
    "EXTENSIONS",
    "FAMILIES",
    "FORMATS",
    "FORMATS_BY_NAME",
    "FormatInfo",
    "ModelFormat",
    "format_info",
    "format_names",
    "formats_of_family",
    "formats_with_extension",
    "parse_format",
]

#: The framework families, each loaded by one loader class, and the pip extra that installs it.
FAMILIES: Mapping[str, str] = MappingProxyType(
    {"torch": "torch", "onnx": "onnx", "tensorflow": "tf"}
)


@dataclass(frozen=True)
class FormatInfo:
    """Everything pyinfer knows about one model format.

    Attributes:
        name: The format's name: a :class:`ModelFormat` value (``"onnx"``, ``"saved-model"``).
        label: How reports and tables name it (``"TorchScript"``, ``"Keras (h5)"``).
        family: The framework family whose loader reads it: ``"torch"``, ``"onnx"`` or
            ``"tensorflow"`` (a key of :data:`FAMILIES`).
        runtime: What a model loaded from it reports as
            :attr:`~pyinfer.backends.base.Model.framework`: ``"torch"``, ``"onnxruntime"``,
            ``"tensorflow"`` or ``"tflite"``.
        extensions: The file extensions (lower case, with the dot) it usually has, most usual
            first; they only break ties in detection, the content decides. Empty for a folder.
        declares_inputs: Whether the file describes its inputs' shapes and types; a format that
            does not (a TorchScript archive, a pickled module) needs the loader's
            ``input_shapes`` option to be profiled.
        is_folder: Whether the model is a folder rather than a file (a SavedModel).
        export_targets: The other formats :mod:`pyinfer.export` writes from a model loaded from
            this one, in the order the formats comparison lists them.
    """

    name: str
    label: str
    family: str
    runtime: str
    extensions: tuple[str, ...]
    declares_inputs: bool
    is_folder: bool = False
    export_targets: tuple[str, ...] = ()

    @property
    def extra(self) -> str:
        """The pip extra that installs the format's framework (``'pyinfer-toolkit[tf]'``)."""
        return FAMILIES[self.family]


_TORCH_MODULE_TARGETS = ("torchscript", "torch-export", "onnx")
_KERAS_TARGETS = ("saved-model", "tflite")

#: ``pytorch-legacy`` has the same facts: only the container (zip or a pickle stream) differs.
_PYTORCH = FormatInfo(
    "pytorch",
    label="PyTorch",
    family="torch",
    runtime="torch",
    extensions=(".pt", ".pth", ".ckpt", ".bin", ".tar", ".pkl"),
    declares_inputs=False,
    export_targets=_TORCH_MODULE_TARGETS,
)

#: The registry, in the order formats are listed everywhere (``--format``'s choices, errors).
FORMATS: tuple[FormatInfo, ...] = (
    FormatInfo(
        "torchscript",
        label="TorchScript",
        family="torch",
        runtime="torch",
        extensions=(".pt", ".pth", ".jit", ".torchscript"),
        declares_inputs=False,
        export_targets=("onnx",),
    ),
    _PYTORCH,
    replace(_PYTORCH, name="pytorch-legacy"),
    FormatInfo(
        "pickle",
        label="PyTorch",
        family="torch",
        runtime="torch",
        extensions=(".pkl", ".pickle", ".pt", ".pth"),
        declares_inputs=False,
        export_targets=_TORCH_MODULE_TARGETS,
    ),
    FormatInfo(
        "torch-export",
        label="torch.export",
        family="torch",
        runtime="torch",
        extensions=(".pt2",),
        declares_inputs=True,
        export_targets=("torchscript", "onnx"),
    ),
    FormatInfo(
        "onnx",
        label="ONNX",
        family="onnx",
        runtime="onnxruntime",
        extensions=(".onnx",),
        declares_inputs=True,
    ),
    FormatInfo(
        "keras-h5",
        label="Keras (h5)",
        family="tensorflow",
        runtime="tensorflow",
        extensions=(".h5", ".hdf5"),
        declares_inputs=True,
        export_targets=_KERAS_TARGETS,
    ),
    FormatInfo(
        "keras",
        label="Keras",
        family="tensorflow",
        runtime="tensorflow",
        extensions=(".keras",),
        declares_inputs=True,
        export_targets=_KERAS_TARGETS,
    ),
    FormatInfo(
        "saved-model",
        label="SavedModel",
        family="tensorflow",
        runtime="tensorflow",
        extensions=(),
        declares_inputs=True,
        is_folder=True,
        export_targets=("tflite",),
    ),
    FormatInfo(
        "tflite",
        label="TFLite",
        family="tensorflow",
        runtime="tflite",
        extensions=(".tflite", ".lite"),
        declares_inputs=True,
    ),
)

#: The registry by format name.
FORMATS_BY_NAME: Mapping[str, FormatInfo] = MappingProxyType({f.name: f for f in FORMATS})


class ModelFormat(str, enum.Enum):
    """The formats pyinfer detects and loads; the value is the name used in reports and the CLI.

    Each member's facts live in the registry (:data:`FORMATS`): :attr:`info`, :attr:`label`,
    :attr:`family`, :attr:`runtime`.
    """

    TORCHSCRIPT = "torchscript"
    """A ``torch.jit.save`` archive (zip with ``code/`` and ``constants.pkl``)."""
    PYTORCH = "pytorch"
    """A ``torch.save`` zip archive: a state_dict, a checkpoint dict or a whole pickled module."""
    PYTORCH_LEGACY = "pytorch-legacy"
    """A ``torch.save`` file in the pre-1.6 format (a stream of pickles, no zip)."""
    PICKLE = "pickle"
    """A plain Python pickle (``pickle.dump`` of a module): loads only with ``trust_code=True``."""
    TORCH_EXPORT = "torch-export"
    """A ``torch.export.save`` program (``.pt2``)."""
    ONNX = "onnx"
    """An ONNX ``ModelProto``, with its external data files beside it where it has them."""
    KERAS_H5 = "keras-h5"
    """A Keras model in the legacy HDF5 format (``.h5``)."""
    KERAS = "keras"
    """A Keras v3 archive (``.keras``: zip with ``config.json`` and ``model.weights.h5``)."""
    SAVED_MODEL = "saved-model"
    """A TensorFlow SavedModel folder (``saved_model.pb`` + ``variables/``)."""
    TFLITE = "tflite"
    """A TensorFlow Lite flatbuffer (file identifier ``TFL3``)."""

    @property
    def info(self) -> FormatInfo:
        """The format's entry in the registry."""
        return FORMATS_BY_NAME[self.value]

    @property
    def label(self) -> str:
        """How reports name the format (``"TorchScript"``, ``"Keras (h5)"``)."""
        return self.info.label

    @property
    def family(self) -> str:
        """The framework family that loads this format: ``torch``, ``onnx`` or ``tensorflow``."""
        return self.info.family

    @property
    def runtime(self) -> str:
        """What a loaded model reports as its framework: ``torch``, ``onnxruntime``, ``tflite``...

        One of ``torch``, ``onnxruntime``, ``tensorflow`` or ``tflite``, as
        :attr:`~pyinfer.backends.base.Model.framework`.
        """
        return self.info.runtime

    @property
    def framework(self) -> str:
        """The framework family that loads this format: ``torch``, ``onnx`` or ``tensorflow``.

        The same as :attr:`family` (kept under this name); what a loaded model reports as its
        framework is :attr:`runtime`.
        """
        return self.info.family

    def __str__(self) -> str:
        return self.value


#: Extension -> the formats a file with it usually holds (detection's tie-breaker and warning).
EXTENSIONS: Mapping[str, frozenset[ModelFormat]] = MappingProxyType(
    {
        ext: frozenset(ModelFormat(f.name) for f in FORMATS if ext in f.extensions)
        for ext in dict.fromkeys(e for f in FORMATS for e in f.extensions)
    }
)


def format_info(fmt: ModelFormat | str) -> FormatInfo:
    """The registry's entry for a format.

    Args:
        fmt: A :class:`ModelFormat` or its name (``"onnx"``; case and spaces ignored).

    Returns:
        The format's facts.

    Raises:
        InvalidArgumentError: If the name is not a known format; the message lists them.
    """
    return parse_format(fmt).info


def parse_format(fmt: ModelFormat | str) -> ModelFormat:
    """A format as users write it (``"ONNX"``, ``" keras-h5"``) as a :class:`ModelFormat`.

    Raises:
        InvalidArgumentError: If the name is not a known format; the message lists them.
    """
    if isinstance(fmt, ModelFormat):
        return fmt
    try:
        return ModelFormat(str(fmt).strip().lower())
    except ValueError:
        known = ", ".join(f.value for f in ModelFormat)
        raise InvalidArgumentError(f"unknown model format {fmt!r}; known: {known}") from None


def formats_with_extension(extension: str) -> frozenset[ModelFormat]:
    """The formats a file with this extension usually holds (empty when none).

    Args:
        extension: With or without the leading dot, any case (``".PT"``, ``"onnx"``).
    """
    ext = extension.lower()
    return EXTENSIONS.get(ext if ext.startswith(".") else f".{ext}", frozenset())


def formats_of_family(family: str) -> frozenset[ModelFormat]:
    """The formats one framework family loads (``"torch"``, ``"onnx"``, ``"tensorflow"``)."""
    return frozenset(ModelFormat(f.name) for f in FORMATS if f.family == family)


def format_names(formats: Iterable[ModelFormat]) -> str:
    """Format names sorted and joined for a message: ``"onnx or tflite"``."""
    return " or ".join(sorted(f.value for f in formats))
