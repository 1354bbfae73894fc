"""Exporting a model to the other formats of its framework, the way pyinfer loads them fastest.

Used by the tests, the benchmark suite and ``pyinfer formats`` to compare one model across
formats. Every exporter writes models with a dynamic batch dimension where the format allows it
and keeps external data files next to the model.
"""

from __future__ import annotations

# -- torch: TorchScript, torch.export and ONNX ---------------------------------------------------


# -- Keras: .h5, .keras, SavedModel and TFLite ---------------------------------------------------
