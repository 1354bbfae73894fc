"""The TensorFlow backend's entry point: :func:`load` picks the loader for the format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfer.backends.base import Device, Model, ModelFormat, check_options
from pyinfer.backends.frameworks import import_tensorflow
from pyinfer.backends.tensorflow.common import _tf_device
from pyinfer.backends.tensorflow.keras import _load_keras
from pyinfer.backends.tensorflow.saved_model import _load_saved_model
from pyinfer.backends.tensorflow.tflite import _load_tflite
from pyinfer.errors import InvalidArgumentError

#: Every option :func:`load` takes, with the formats it applies to.
KNOWN_OPTIONS: dict[str, str] = {
    "call_mode": "keras: 'function' (default), 'direct' or 'predict'",
    "custom_objects": "keras: dict of name to class or function, passed to load_model",
    "trust_code": "keras: allow Lambda layers (runs code stored in the file); saved-model and "
    "tflite: allow ops that write files or call Python; default False",
    "signature": "saved-model: the signature to run, default 'serving_default'",
    "num_threads": "tflite: interpreter threads, default the physical cores",
}


_KERAS_FORMATS = (ModelFormat.KERAS_H5, ModelFormat.KERAS)


def load(path: Path, fmt: ModelFormat, device: Device, *, name: str, **options: Any) -> Model:
    """Loads a Keras, SavedModel or TFLite model.

    Args:
        path: The ``.h5`` / ``.keras`` / ``.tflite`` file, or the SavedModel folder.
        fmt: Its format: ``KERAS_H5``, ``KERAS``, ``SAVED_MODEL`` or ``TFLITE``.
        device: ``cpu`` or ``cuda:N`` (TensorFlow's ``/GPU:N``; TFLite is CPU-only).
        name: Name for reports.
        **options: See :data:`KNOWN_OPTIONS`. Every option is accepted for every format (so one
            :class:`~pyinfer.loading.TensorFlowModelLoader` can load files of all four);
            :attr:`Model.options` records those that applied.

    Returns:
        The loaded model.

    Raises:
        InvalidArgumentError: On an unknown option or value, an unknown signature, or CUDA asked
            for a TFLite model.
        UntrustedModelError: Without ``trust_code``: a Keras model with Lambda layers or
            non-modeling Keras functions, a SavedModel or TFLite model with ops that write
            files or call Python; always: an ``.h5`` file whose weights are read from other
            files.
        ArchitectureError: If an HDF5 file holds weights only, or a custom layer is unknown.
        CorruptModelError: If the file or folder is damaged.
        CudaUnavailableError: If CUDA is asked for and TensorFlow sees no such GPU.
    """
    check_options(options, KNOWN_OPTIONS, loader="TensorFlow", path=path)
    if fmt is ModelFormat.TFLITE:
        if device.is_cuda:
            raise InvalidArgumentError(
                f"{path} is a TFLite model and TFLite runs on the CPU only; load it with "
                "device='cpu', or load the SavedModel or Keras file it came from on CUDA"
            )
        return _load_tflite(
            path,
            name=name,
            num_threads=options.get("num_threads"),
            trust_code=bool(options.get("trust_code", False)),
        )
    tf = import_tensorflow()
    tf_device = _tf_device(tf, device, path)
    if fmt in _KERAS_FORMATS:
        return _load_keras(
            tf,
            path,
            fmt,
            device,
            tf_device,
            name=name,
            call_mode=options.get("call_mode", "function"),
            trust_code=bool(options.get("trust_code", False)),
            custom_objects=options.get("custom_objects"),
        )
    if fmt is ModelFormat.SAVED_MODEL:
        return _load_saved_model(
            tf,
            path,
            device,
            tf_device,
            name=name,
            signature=options.get("signature", "serving_default"),
            trust_code=bool(options.get("trust_code", False)),
        )
    raise InvalidArgumentError(f"the TensorFlow backend cannot load {fmt.value} models ({path})")
