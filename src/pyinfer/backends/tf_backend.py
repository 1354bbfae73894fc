# Temporary shim: importers move in the merge.
"""The TensorFlow backend moved to :mod:`pyinfer.backends.tensorflow`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.tensorflow import (
    KNOWN_OPTIONS,
    KerasModel,
    SavedModelModel,
    TFLiteModel,
    load,
    saved_model_side_effects,
    tflite_side_effects,
)

__all__ = [
    "KNOWN_OPTIONS",
    "KerasModel",
    "SavedModelModel",
    "TFLiteModel",
    "load",
    "saved_model_side_effects",
    "tflite_side_effects",
]
