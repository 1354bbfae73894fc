"""Running batches through the model: chunks that fit, out-of-memory back-off, overlapped upload.

:class:`BatchRunner` makes the model calls of one engine: a batch too big for memory is halved
(after freeing caches) and the same items retried, the size that fits is kept for the next
batches, and on CUDA the upload of the next batch overlaps the compute of the current one.
Failures around a model call come out typed (:class:`~pyinfer.errors.OutOfMemoryError`,
:class:`~pyinfer.errors.InferenceError`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pyinfer.backends.base import Model
from pyinfer.engine.axes import BatchLayout, OutputAxes
from pyinfer.engine.batching import cut_batch, pad_batch
from pyinfer.engine.prefetch import PreparedBatch
from pyinfer.engine.results import Arrays, RunStats
from pyinfer.engine.upload import _CudaUploader
from pyinfer.errors import InferenceError, OutOfMemoryError, PyinferError, as_out_of_memory

__all__ = ["BatchRunner"]

logger = logging.getLogger(__name__)


class BatchRunner:
    """Makes one engine's model calls, backing off to smaller batches when memory runs out.

    Args:
        model: The model.
        fixed_batch: The model's fixed batch, or ``None`` for a dynamic batch.

    Attributes:
        oom_limit: The largest batch known to fit after running out of memory (``None``: none
            ran out yet).
    """

    def __init__(
        self,
        model: Model,
        fixed_batch: int | None,
        output_batch_axes: Mapping[str, int] | None = None,
    ) -> None:
        self.model = model
        self.device = model.device
        self.fixed_batch = fixed_batch
        self.oom_limit: int | None = None
        self.layout = BatchLayout(model)
        self.output_axes = OutputAxes(model, output_batch_axes or {}, fixed_batch)

    def call(self, arrays: Arrays, count: int) -> Arrays:
        """One model call on a batch that fits (padded for a fixed-batch model).

        Args:
            arrays: The batch, every input's items first (one run of equal shared values).
            count: Its items.

        Returns:
            The outputs of the ``count`` items, every output's items first.
        """
        padded = pad_batch(arrays, count, self.fixed_batch, self.model.name)
        return self.split(self.model_call(padded), count, padded)

    def model_call(self, arrays: Arrays) -> Arrays:
        """The model's outputs (as it gives them) for a batch with its items first."""
        model = self.model
        return model.to_numpy(model.run_native(model.to_native(self.layout.to_model(arrays))))

    def split(self, outputs: Arrays, count: int, padded: Arrays) -> Arrays:
        """The model's outputs with each output's items first, cut to the ``count`` real ones.

        ``padded`` is the batch that ran (items first): where an output's batch axis is
        ambiguous, it runs again at another size to tell it.
        """
        full = count if self.fixed_batch is None else max(count, self.fixed_batch)

        def probe(size: int) -> Arrays:
            index = np.arange(size) % full
            return self.model_call({k: v[index] for k, v in padded.items()})

        rows = self.output_axes.rows(outputs, full, None if self.fixed_batch else probe)
        return cut_batch(rows, count, self.fixed_batch, self.model.name)

    def execute(
        self, batches: Iterator[PreparedBatch], stats: RunStats, uploader: _CudaUploader | None
    ) -> Iterator[tuple[PreparedBatch, Arrays | None]]:
        """Runs prepared batches in order; with an uploader, the next upload overlaps compute."""
        if uploader is None:
            for prepared in batches:
                yield prepared, self.run_prepared(prepared, stats)
            return
        current = next(batches, None)
        staged = self.stage(uploader, current)
        while current is not None:
            pending: Any = None
            if staged is not None:
                try:
                    pending = self.model.run_native(staged)
                except Exception as exc:
                    self.back_off_or_raise(exc, current.count, stats)
            upcoming = next(batches, None)
            staged_next = self.stage(uploader, upcoming)  # uploads while `pending` computes
            outputs: Arrays | None
            if pending is not None:
                try:
                    outputs = self.to_rows(self.model.to_numpy(pending), current, stats)
                except Exception as exc:
                    self.back_off_or_raise(exc, current.count, stats)
                    outputs = self.run_prepared(current, stats)
            else:
                outputs = self.run_prepared(current, stats)
            yield current, outputs
            current, staged = upcoming, staged_next

    def back_off_or_raise(self, exc: Exception, count: int, stats: RunStats) -> None:
        """After a failed staged run: halve the batch on out-of-memory, else raise."""
        if as_out_of_memory(exc) is None:
            raise self.inference_error(exc, count) from exc
        self.after_oom(count, stats)

    def stage(self, uploader: _CudaUploader, prepared: PreparedBatch | None) -> Any:
        """Starts the upload of a prepared batch; ``None`` when it has to take the plain path."""
        if prepared is None or prepared.arrays is None:
            return None
        if self.oom_limit is not None and prepared.count > self.oom_limit:
            return None  # too big since an OOM: the plain path splits it
        if len(self.layout.runs(prepared.arrays, prepared.count)) > 1:
            return None  # items of different shared values: the plain path calls per run
        arrays = pad_batch(prepared.arrays, prepared.count, self.fixed_batch, self.model.name)
        return uploader.stage(self.layout.to_model(arrays))

    def to_rows(self, outputs: Arrays, prepared: PreparedBatch, stats: RunStats) -> Arrays:
        """Counts a staged call and keeps the outputs of its real items, items first."""
        count = prepared.count
        stats.record_call(count, self.fixed_batch)
        assert prepared.arrays is not None  # a staged batch has inputs
        padded = pad_batch(prepared.arrays, count, self.fixed_batch, self.model.name)
        return self.split(outputs, count, padded)

    def run_prepared(self, prepared: PreparedBatch, stats: RunStats) -> Arrays | None:
        """A prepared batch's outputs (``None`` when none of its inputs made it)."""
        if prepared.arrays is None:
            return None
        return self.run_batch(prepared.arrays, prepared.count, stats)

    def run_batch(self, arrays: Arrays, count: int, stats: RunStats) -> Arrays:
        """:meth:`run_chunks`, with any failure that is not yet typed made typed.

        Raises:
            OutOfMemoryError: If even the smallest batch does not fit.
            InferenceError: If the model fails.
        """
        try:
            return self.run_chunks(arrays, count, stats)
        except PyinferError:
            raise
        except Exception as exc:
            raise self.inference_error(exc, count) from exc

    def inference_error(self, exc: BaseException, count: int) -> InferenceError | OutOfMemoryError:
        """The typed error for a failure around a model call (memory running out included)."""
        if as_out_of_memory(exc) is not None:  # e.g. joining the outputs of a backed-off batch
            return OutOfMemoryError(
                f"model '{self.model.name}' on {self.device} ran out of memory on a batch of "
                f"{count}: {type(exc).__name__}: {exc}"
            )
        return InferenceError(
            f"model '{self.model.name}' failed on a batch of {count}: {type(exc).__name__}: {exc}"
        )

    def run_chunks(self, arrays: Arrays, count: int, stats: RunStats) -> Arrays:
        """Runs ``count`` stacked items, in chunks that fit, halving after out-of-memory.

        Items whose shared inputs differ (a sample rate of 8000, then 16000) go to separate
        calls: each run of consecutive equal values is chunked on its own, in order.
        """
        parts: list[Arrays] = []
        for span in self.layout.runs(arrays, count):
            parts += self.run_span(arrays, span, count, stats)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def run_span(
        self, arrays: Arrays, span: tuple[int, int], count: int, stats: RunStats
    ) -> list[Arrays]:
        """The outputs of items ``span[0]`` to ``span[1]`` of a batch of ``count``, by call."""
        start, stop = span
        parts: list[Arrays] = []
        while start < stop:
            if self.fixed_batch is not None:
                size = min(self.fixed_batch, stop - start)
            else:
                size = min(stop - start, self.oom_limit or count)
            chunk = (
                arrays if size == count else {k: v[start : start + size] for k, v in arrays.items()}
            )
            try:
                out = self.call(chunk, size)
            except Exception as exc:
                oom = as_out_of_memory(exc)
                if oom is None:
                    raise
                if size == 1 or self.fixed_batch is not None:
                    what = (
                        "one item"
                        if self.fixed_batch is None
                        else f"the model's fixed batch of {self.fixed_batch}"
                    )
                    raise OutOfMemoryError(
                        f"model '{self.model.name}' on {self.device} ran out of memory on "
                        f"{what}: {oom}"
                    ) from exc
                self.after_oom(size, stats)
                continue
            stats.record_call(size, self.fixed_batch)
            parts.append(out)
            start += size
        return parts

    def after_oom(self, size: int, stats: RunStats) -> None:
        """Halves the batch after ``size`` items ran out of memory, or raises if it cannot."""
        if size <= 1 or self.fixed_batch is not None:
            raise OutOfMemoryError(
                f"model '{self.model.name}' on {self.device} ran out of memory on a batch of "
                f"{size} and cannot use a smaller one"
            )
        new = max(1, size // 2)
        self.oom_limit = new
        stats.oom_retries += 1
        logger.warning(
            "model '%s' ran out of memory on a batch of %d; retrying the same items in batches "
            "of %d",
            self.model.name,
            size,
            new,
        )
        self.free_memory()

    def free_memory(self) -> None:
        """Collects garbage and lets the framework free its cached device memory."""
        gc.collect()
        self.model.release_cached_memory()
