# Temporary shim: importers move in the merge.
"""The ONNX Runtime backend moved to :mod:`pyinfer.backends.onnx`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.onnx import KNOWN_OPTIONS, OnnxModel, external_data_files, load

__all__ = ["KNOWN_OPTIONS", "OnnxModel", "external_data_files", "load"]
