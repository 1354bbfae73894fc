"""The inference engine: running a loaded model on single inputs, batches and whole datasets.

What belongs here: :class:`InferenceEngine` and the jobs it coordinates, one module each:
listing a dataset (:mod:`~pyinfer.engine.dataset`), preparing batches ahead in worker threads
(:mod:`~pyinfer.engine.prefetch`), checking, padding and cutting batches
(:mod:`~pyinfer.engine.batching`), stacking and splitting along each tensor's batch axis
(:mod:`~pyinfer.engine.axes`), running them with out-of-memory back-off
(:mod:`~pyinfer.engine.runner`), staging and uploading them to the device
(:mod:`~pyinfer.engine.upload`), choosing a batch size (:mod:`~pyinfer.engine.batch_size`),
what a run gives back (:mod:`~pyinfer.engine.results`) and reading a classifier's scores
(:mod:`~pyinfer.engine.postprocess`). Preprocessing of single items lives in
:mod:`pyinfer.preprocess`; timing and profiling in the profiler.
"""

from __future__ import annotations

from pyinfer.engine.batch_size import LatencyPoint, best_batch_under_budget
from pyinfer.engine.engine import InferenceEngine
from pyinfer.engine.postprocess import Prediction, softmax, top_k, top_k_batch
from pyinfer.engine.results import (
    BatchMeasurement,
    BatchOutputs,
    BatchSizeChoice,
    DatasetResult,
    ItemFailure,
    ItemResult,
)

__all__ = [
    "BatchMeasurement",
    "BatchOutputs",
    "BatchSizeChoice",
    "DatasetResult",
    "InferenceEngine",
    "ItemFailure",
    "ItemResult",
    "LatencyPoint",
    "Prediction",
    "best_batch_under_budget",
    "softmax",
    "top_k",
    "top_k_batch",
]
