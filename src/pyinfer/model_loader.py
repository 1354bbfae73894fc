"""Loading models of every common format (kept for one release; import from pyinfer.loading).

The detection and the loaders live in :mod:`pyinfer.loading` (:mod:`pyinfer.loading.detect`,
:mod:`pyinfer.loading.loaders`); this module re-exports their public names.
"""

from __future__ import annotations

from pyinfer.loading import (
    ModelLoader,
    ONNXModelLoader,
    PyTorchModelLoader,
    TensorFlowModelLoader,
    detect_format,
    load_model,
)

__all__ = [
    "ModelLoader",
    "ONNXModelLoader",
    "PyTorchModelLoader",
    "TensorFlowModelLoader",
    "detect_format",
    "load_model",
]
