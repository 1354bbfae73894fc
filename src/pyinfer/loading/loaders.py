"""The loaders, one per framework family, and :func:`load_model`, which picks one by content.

:func:`load_model` detects the format (:func:`~pyinfer.loading.detect.detect_format`), hands the
file to the loader of the format's family (from the registry, :mod:`pyinfer.formats`) and
records the cold-load time in the returned :class:`~pyinfer.backends.base.Model`. The loaders
hold options and load files:

* :class:`PyTorchModelLoader`: TorchScript, ``torch.save`` checkpoints (state_dicts with an
  architecture, checkpoint dicts, whole pickled modules on explicit opt-in), ``torch.export``
  programs, Hugging Face model folders (``config.json`` + safetensors, with transformers) and
  in-memory modules;
* :class:`ONNXModelLoader`: ONNX models through ONNX Runtime;
* :class:`TensorFlowModelLoader`: Keras ``.h5`` and ``.keras``, SavedModel folders and TFLite.

Each loader imports its backend (and so its framework) only when it loads a model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from pyinfer import core
from pyinfer.backends import frameworks, huggingface
from pyinfer.backends.base import Device, LoadRequest, Model, parse_device
from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import ModelFormat, format_names, formats_of_family, parse_format
from pyinfer.loading.detect import detect_format, resolve_path
from pyinfer.loading.quiet import native_output_silenced

__all__ = [
    "LOADERS",
    "ModelLoader",
    "ONNXModelLoader",
    "PyTorchModelLoader",
    "TensorFlowModelLoader",
    "load_model",
]

logger = logging.getLogger(__name__)


class ModelLoader:
    """Base of the loaders: options held once, applied to every file loaded.

    Subclasses set :attr:`family` (their formats follow from the registry) and implement
    :meth:`_load`.

    Args:
        **options: Framework options, checked when a model is loaded (see each loader).
    """

    #: The framework family whose formats the loader reads (a key of
    #: :data:`pyinfer.formats.FAMILIES`).
    family: ClassVar[str] = ""
    #: The runtime the loader's models report as their framework, but for TFLite models
    #: (``tflite``): each format's is :attr:`~pyinfer.formats.ModelFormat.runtime`.
    framework: ClassVar[str] = ""
    #: The formats the loader reads: the registry's formats of its family.
    formats: ClassVar[frozenset[ModelFormat]] = frozenset()

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    def load(
        self,
        path: str | Path,
        *,
        format: ModelFormat | str | None = None,
        device: str | Device | None = "cpu",
        quiet_native_logs: bool = False,
        name: str | None = None,
    ) -> Model:
        """Loads one model file or folder.

        Args:
            path: The model.
            format: Skip detection and load as this format.
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            quiet_native_logs: Keep the log lines the framework writes from C++ while it is
                imported and loads the model off the console (see
                :func:`~pyinfer.loading.quiet.native_output_silenced`); they are logged at
                DEBUG level instead.
            name: Name for reports; the file's stem by default.

        Returns:
            The loaded model, with :attr:`~pyinfer.backends.base.Model.load_time_s` set.

        Raises:
            ModelLoadError: Or a subclass, naming the path and what is wrong.
            FrameworkNotInstalledError: If the framework is missing.
            DeviceError: If the device cannot be used.
        """
        start_ns = core.now_ns()
        imports_before = frameworks.import_seconds()
        p = resolve_path(path)
        fmt = parse_format(format) if format is not None else detect_format(p)
        if fmt not in self.formats:
            raise InvalidArgumentError(
                f"{type(self).__name__} cannot load {fmt.value} models ({p}); it loads "
                f"{format_names(self.formats)}: use load_model() to pick the loader from the "
                "content"
            )
        if fmt is ModelFormat.SAVED_MODEL and p.is_file():
            p = p.parent
        with native_output_silenced(quiet_native_logs):
            model = self._load(p, fmt, parse_device(device), name or _default_name(p))
        import_s = frameworks.import_seconds() - imports_before
        model.import_time_s = import_s
        model.load_request = LoadRequest(
            path=str(p.absolute()),
            format=fmt.value,
            device=str(model.device),
            name=model.name,
            options=dict(self.options),
        )
        model.load_time_s = max(0.0, (core.now_ns() - start_ns) / 1e9 - import_s)
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
      :mod:`pyinfer.backends.torch`.
    """

    family = "torch"
    framework = "torch"
    formats = formats_of_family(family)

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import torch as torch_backend

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
        from pyinfer.backends import torch as torch_backend

        start_ns = core.now_ns()
        model = torch_backend.from_module(
            module, parse_device(device), name=name or type(module).__name__, **self.options
        )
        model.load_time_s = (core.now_ns() - start_ns) / 1e9
        return model


class ONNXModelLoader(ModelLoader):
    """Loads ONNX models into ONNX Runtime sessions.

    Options: ``providers`` (explicit list, overrides the device's choice), ``allow_fallback``
    (default ``False``: asking for CUDA and getting the CPU is an error, not a warning),
    ``intra_op_threads`` (default: physical cores), ``inter_op_threads``,
    ``graph_optimization`` (``"all"`` by default, ``"extended"``, ``"basic"``, ``"disable"``),
    ``input_shapes`` (fix symbolic dimensions), ``provider_options``.

    A Hugging Face folder exported to ONNX (``model.onnx`` beside ``config.json`` and the
    tokenizer) loads from the folder or the file; the tokenizer is attached as
    ``model.tokenizer`` and makes the example inputs (real token ids and masks).
    """

    family = "onnx"
    framework = "onnxruntime"
    formats = formats_of_family(family)

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import onnx as onnx_backend

        folder = path if path.is_dir() else path.parent
        file = path
        if path.is_dir():  # a Hugging Face folder's export (the backend refuses other folders)
            file = huggingface.onnx_file(path) or path
        model = onnx_backend.load(file, fmt, device, name=name, **self.options)
        if (folder / "config.json").is_file() and huggingface.has_tokenizer(folder):
            # An export of a Hugging Face model: its tokenizer makes the example inputs.
            tokenizer = huggingface.load_tokenizer(folder)
            if tokenizer is not None:
                config = huggingface.read_config(folder)
                positions = int(config.get("max_position_embeddings") or 0)
                default = huggingface.DEFAULT_SEQUENCE_LENGTH
                huggingface.attach_tokenizer(
                    model,
                    huggingface.TextEncoder(tokenizer),
                    default_sequence=min(default, positions) if positions else default,
                )
        return model


class TensorFlowModelLoader(ModelLoader):
    """Loads Keras (``.h5``, ``.keras``), SavedModel folders and TFLite files.

    Options: ``signature`` (SavedModel, default ``"serving_default"``), ``num_threads``
    (TFLite, default: physical cores), ``trust_code`` (Keras lambda layers and non-modeling
    Keras functions, SavedModel and TFLite ops that write files or call Python; default
    ``False``), ``custom_objects``, ``call_mode`` (Keras: ``"function"``, a
    ``tf.function`` around the model's call, by default; ``"direct"`` or ``"predict"``).
    """

    family = "tensorflow"
    framework = "tensorflow"
    formats = formats_of_family(family)

    def _load(self, path: Path, fmt: ModelFormat, device: Device, name: str) -> Model:
        from pyinfer.backends import tensorflow as tf_backend

        return tf_backend.load(path, fmt, device, name=name, **self.options)


#: Framework family -> its loader class (the families are the registry's).
LOADERS: dict[str, type[ModelLoader]] = {
    loader.family: loader for loader in (PyTorchModelLoader, ONNXModelLoader, TensorFlowModelLoader)
}


def load_model(
    path: str | Path,
    format: ModelFormat | str | None = None,
    device: str | Device | None = "cpu",
    *,
    name: str | None = None,
    quiet_native_logs: bool = False,
    **options: Any,
) -> Model:
    """Loads a model of any supported format, detected from the file's content.

    Args:
        path: A model file, or a TensorFlow SavedModel folder.
        format: Skip detection and load as this format (a :class:`ModelFormat` or its value,
            such as ``"onnx"``).
        device: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
        name: Name for reports; the file's stem by default.
        quiet_native_logs: Keep the log lines TensorFlow and ONNX Runtime write from C++ while
            they are imported and load the model off the console; they are logged at DEBUG
            level instead (the command line turns this on unless ``--verbose``).
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
    p = resolve_path(path)
    fmt = parse_format(format) if format is not None else detect_format(p)
    loader = LOADERS[fmt.family](**options)
    return loader.load(p, format=fmt, device=device, name=name, quiet_native_logs=quiet_native_logs)
