# Temporary shim: importers move in the merge.
"""The PyTorch backend moved to :mod:`pyinfer.backends.torch`; this module re-exports it."""

from __future__ import annotations

from pyinfer.backends.torch import (
    COMPUTED_GLOBAL,
    KNOWN_OPTIONS,
    LoadReport,
    TorchModel,
    export_archive_code,
    flatten_outputs,
    from_module,
    load,
    pickle_globals,
)

__all__ = [
    "COMPUTED_GLOBAL",
    "KNOWN_OPTIONS",
    "LoadReport",
    "TorchModel",
    "export_archive_code",
    "flatten_outputs",
    "from_module",
    "load",
    "pickle_globals",
]
