"""The inference engine (kept for one release; import from :mod:`pyinfer.engine` instead).

Every public name this module had is re-exported from :mod:`pyinfer.engine`, where the engine's
jobs (dataset listing, prefetch, batching, out-of-memory back-off, upload, batch-size choice)
now live in one module each.
"""

from __future__ import annotations

from pyinfer.engine import (
    BatchMeasurement,
    BatchOutputs,
    BatchSizeChoice,
    DatasetResult,
    InferenceEngine,
    ItemFailure,
    ItemResult,
    Prediction,
    softmax,
    top_k,
    top_k_batch,
)

__all__ = [
    "BatchMeasurement",
    "BatchOutputs",
    "BatchSizeChoice",
    "DatasetResult",
    "InferenceEngine",
    "ItemFailure",
    "ItemResult",
    "Prediction",
    "softmax",
    "top_k",
    "top_k_batch",
]
