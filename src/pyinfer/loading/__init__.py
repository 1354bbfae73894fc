"""Loading model files: format detection by content, and the loaders of each framework family.

What belongs here: reading a file or folder far enough to know its format (:func:`detect_format`:
magic numbers, a zip archive's table of contents, an ONNX protobuf walk), picking the loader of
the format's family from the registry (:mod:`pyinfer.formats`) and timing the cold load
(:func:`load_model`, the loader classes), and keeping the frameworks' native log lines off the
console while they import and load (:func:`native_output_silenced`). Running a loaded model
belongs to :mod:`pyinfer.backends`; the facts about each format to :mod:`pyinfer.formats`.
"""

from __future__ import annotations

from pyinfer.loading.detect import detect_format, resolve_path
from pyinfer.loading.loaders import (
    LOADERS,
    ModelLoader,
    ONNXModelLoader,
    PyTorchModelLoader,
    TensorFlowModelLoader,
    load_model,
)
from pyinfer.loading.quiet import native_output_silenced

__all__ = [
    "LOADERS",
    "ModelLoader",
    "ONNXModelLoader",
    "PyTorchModelLoader",
    "TensorFlowModelLoader",
    "detect_format",
    "load_model",
    "native_output_silenced",
    "resolve_path",
]
