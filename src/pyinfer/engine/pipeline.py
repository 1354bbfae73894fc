"""A dataset's run: items through the preprocessing workers and the model, results in order.

:func:`iter_results` cuts the items into chunks of a batch, has worker threads prepare the next
chunks (:class:`~pyinfer.engine.prefetch.BatchPreparer`) while the model runs the current one
(:class:`~pyinfer.engine.runner.BatchRunner`, with its out-of-memory back-off), and yields one
:class:`~pyinfer.engine.results.ItemResult` per input, in input order, as each batch finishes.
:func:`collect` gathers them into a :class:`~pyinfer.engine.results.DatasetResult` and keeps
what was finished when a run stops early. :func:`progress_bar` makes the optional tqdm bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from pyinfer import core
from pyinfer.engine.dataset import Item, read_chunks
from pyinfer.engine.prefetch import BatchPreparer
from pyinfer.engine.results import DatasetResult, ItemResult, RunStats
from pyinfer.engine.runner import BatchRunner
from pyinfer.engine.upload import _CudaUploader
from pyinfer.errors import DatasetSourceError, InferenceError, OutOfMemoryError

__all__ = ["collect", "iter_results", "progress_bar"]


def progress_bar(
    show: bool | None, stream: IO[str] | None, total: int | None, batch_size: int, desc: str
) -> Any:
    """A tqdm bar over ``total`` items, or ``None`` when none is shown.

    Args:
        show: ``True``/``False`` forces it; ``None`` shows it on a terminal for a run longer
            than one batch.
        stream: Where it draws (standard error by default).
        total: The number of items, if known.
        batch_size: The run's batch size.
        desc: The bar's label (the model's name).
    """
    if show is None:
        long_run = total is None or total > batch_size
        show = bool(getattr(stream or sys.stderr, "isatty", lambda: False)()) and long_run
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        file=stream or sys.stderr,
        unit="item",
        desc=desc,
        dynamic_ncols=True,
        mininterval=0.2,
    )


def iter_results(
    items: Iterator[Item],
    stats: RunStats,
    *,
    preparer: BatchPreparer,
    runner: BatchRunner,
    uploader: _CudaUploader | None,
    batch_size: int,
    num_workers: int,
    prefetch: int,
    make_bar: Callable[[], Any],
) -> Iterator[ItemResult]:
    """One result per input, in input order, as each batch finishes.

    Failures of single inputs are results with a reason; the run goes on. The workers and the
    bar (made when the run starts) end with the run, however it ends.

    Raises:
        DatasetSourceError: If the source itself raised part-way (the items before it ran).
        InferenceError: If the model fails on a batch.
        OutOfMemoryError: If even one item does not fit.
    """
    chunks = read_chunks(items, batch_size)
    bar = make_bar()
    executor = (
        ThreadPoolExecutor(num_workers, thread_name_prefix="pyinfer-prep")
        if num_workers > 0
        else None
    )
    done = 0
    finished = False
    try:
        for prepared, outputs in runner.execute(
            preparer.prefetched(chunks, executor, prefetch), stats, uploader
        ):
            merged: list[ItemResult] = [
                ItemResult(f.index, f.source, None, f.reason) for f in prepared.failures
            ]
            for row, (index, source) in enumerate(
                zip(prepared.indices, prepared.sources, strict=True)
            ):
                assert outputs is not None  # a batch with inputs has outputs
                merged.append(ItemResult(index, source, {k: v[row] for k, v in outputs.items()}))
            merged.sort(key=lambda r: r.index)
            done += len(merged)
            if bar is not None:
                bar.update(len(merged))
            yield from merged
        source_error = getattr(items, "error", None)
        if source_error is not None:
            raise DatasetSourceError(
                f"the dataset source raised {type(source_error).__name__} after {done} "
                f"item(s): {source_error}; the items before it were run and are kept"
            ) from source_error
        finished = True
    finally:
        if executor is not None:
            # After a full run the workers are idle: wait for them, so none outlives the
            # call. After a failure or Ctrl-C, queued work is cancelled and the call does
            # not wait on an item being preprocessed (its worker ends right after it).
            executor.shutdown(wait=finished, cancel_futures=True)
        if bar is not None:
            bar.close()


def collect(results: Callable[[RunStats], Iterator[ItemResult]]) -> DatasetResult:
    """Every result of a run, with its statistics and wall time.

    Args:
        results: Starts the run, given the statistics to fill in (:func:`iter_results`).

    Raises:
        InferenceError, OutOfMemoryError, KeyboardInterrupt: As the run raised them, with the
            :class:`DatasetResult` of the inputs finished before as ``partial_result``
            (``interrupted=True`` after Ctrl-C).
    """
    result = DatasetResult()
    stats = RunStats()
    start = core.now_ns()

    def finish() -> None:
        stats.copy_to(result)
        result.elapsed_s = (core.now_ns() - start) / 1e9

    try:
        for item in results(stats):
            result._add(item)
    except (InferenceError, OutOfMemoryError, KeyboardInterrupt) as exc:
        result.interrupted = isinstance(exc, KeyboardInterrupt)
        finish()
        exc.partial_result = result  # type: ignore[union-attr]
        raise
    finish()
    return result
