# Temporary shim: importers move in the merge.
"""The PyTorch backend moved to :mod:`pyinfer.backends.torch`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.torch import *  # noqa: F403
from pyinfer.backends.torch import __all__  # noqa: F401 - the same names as the package
