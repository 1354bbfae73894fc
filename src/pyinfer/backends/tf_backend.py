# Temporary shim: importers move in the merge.
"""The TensorFlow backend moved to :mod:`pyinfer.backends.tensorflow`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.tensorflow import *  # noqa: F403
from pyinfer.backends.tensorflow import __all__  # noqa: F401 - the same names as the package
