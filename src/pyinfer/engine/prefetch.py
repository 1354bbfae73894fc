"""Preparing batches: each raw item preprocessed and checked, collated, prefetched in threads.

:class:`BatchPreparer` turns a chunk of raw items into a :class:`PreparedBatch` batch (the inputs
that made it, stacked, and the ones that failed with their reason) and keeps ``prefetch``
batches in preparation in worker threads while the model runs the current one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyinfer.backends.base import Model
from pyinfer.engine.dataset import Chunk
from pyinfer.engine.results import Arrays, ItemFailure
from pyinfer.preprocess import Casting, as_item, check_item, stack_items

__all__ = ["BatchPreparer", "PreparedBatch"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedBatch:
    """A batch after preprocessing: the inputs that made it, stacked, and the ones that failed."""

    indices: list[int]
    sources: list[str]
    arrays: Arrays | None
    failures: list[ItemFailure]

    @property
    def count(self) -> int:
        """How many inputs made it into the batch."""
        return len(self.indices)


class BatchPreparer:
    """Preprocesses and checks raw items and collates them into batches.

    Args:
        model: The model the inputs are for.
        preprocessor: The engine's preprocessor, or ``None``; its optional ``collate(items)``
            builds batches (:func:`~pyinfer.preprocess.stack_items` otherwise).
        cast_inputs: The dtype cast to apply, if any.
    """

    def __init__(
        self, model: Model, preprocessor: Callable[[Any], Any] | None, cast_inputs: Casting | None
    ) -> None:
        self.model = model
        self.preprocessor = preprocessor
        self.cast_inputs = cast_inputs
        self.collate: Callable[[Sequence[Mapping[str, np.ndarray]]], Arrays] = (
            getattr(preprocessor, "collate", None) or stack_items
        )

    def item(self, raw: Any, where: str) -> Arrays:
        """One raw item, preprocessed and checked against the model (``where`` names it)."""
        value = self.preprocessor(raw) if self.preprocessor is not None else raw
        return check_item(
            self.model, as_item(self.model, value), casting=self.cast_inputs, where=where
        )

    def prefetched(
        self, chunks: Iterator[Chunk], executor: ThreadPoolExecutor | None, prefetch: int
    ) -> Iterator[PreparedBatch]:
        """The chunks prepared in order, up to ``prefetch`` ahead in ``executor``'s threads."""
        if executor is None:
            for chunk in chunks:
                yield self.chunk(chunk)
            return
        queue: deque[Future[PreparedBatch]] = deque()
        for chunk in chunks:
            try:
                queue.append(executor.submit(self.chunk, chunk))
            except RuntimeError as exc:  # a worker thread could not start (memory, limits)
                logger.warning(
                    "model '%s': cannot start a preprocessing thread (%s); preparing the "
                    "remaining batches in the calling thread",
                    self.model.name,
                    exc,
                )
                while queue:
                    yield queue.popleft().result()
                yield self.chunk(chunk)
                for rest in chunks:
                    yield self.chunk(rest)
                return
            if len(queue) > prefetch:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()

    def chunk(self, chunk: Chunk) -> PreparedBatch:
        """One chunk prepared: a bad input is reported with its reason, and the rest goes on."""
        indices: list[int] = []
        sources: list[str] = []
        ready: list[Arrays] = []
        failures: list[ItemFailure] = []
        for index, source, raw in chunk:
            try:
                where = f" (item {index})" if source == f"item {index}" else f" ({source})"
                ready.append(self.item(raw, where))
            except Exception as exc:  # a bad input is reported, and the run goes on
                failures.append(ItemFailure(index, source, f"{type(exc).__name__}: {exc}"))
                continue
            indices.append(index)
            sources.append(source)
        arrays: Arrays | None = None
        if ready:
            try:
                arrays = self.collate(ready)
            except Exception as exc:
                reason = f"batch could not be assembled: {type(exc).__name__}: {exc}"
                failures.extend(
                    ItemFailure(i, s, reason) for i, s in zip(indices, sources, strict=True)
                )
                indices, sources = [], []
        return PreparedBatch(indices, sources, arrays, failures)
