# Temporary shim: importers move in the merge.
"""The ONNX Runtime backend moved to :mod:`pyinfer.backends.onnx`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.onnx import *  # noqa: F403
from pyinfer.backends.onnx import __all__  # noqa: F401 - the same names as the package
