"""The inference engine: single inputs, batches and whole datasets through a loaded model.

:class:`InferenceEngine` wraps a :class:`~pyinfer.backends.base.Model` (or loads one from a
path) with an optional preprocessor (see :mod:`pyinfer.preprocessors`) and runs:

* :meth:`~InferenceEngine.predict`: one input, without its batch dimension;
* :meth:`~InferenceEngine.predict_batch`: a list of inputs or an already stacked batch, as one
  model call on a model with a dynamic batch; split into the model's batch (and the last chunk
  padded, then cut) on a model with a fixed batch;
* :meth:`~InferenceEngine.run_dataset`: an iterable, a numpy array or a folder of images, in
  batches of ``batch_size``, results in input order (or streamed as batches finish), with a
  progress bar. Preprocessing of the next batches runs in worker threads while the model runs
  the current one; on CUDA (torch) each batch is staged in a pinned-memory ring slot and
  uploaded on a side stream while the previous batch computes.

Every input is checked against the model's input specs before it runs (names, shapes with
dynamic dimensions, dtypes); dtypes are cast only when asked (``cast_inputs="safe"``). An input
that fails to decode, preprocess or validate in a dataset is reported with its index and reason,
and the run goes on. An out-of-memory error from any framework makes the engine free caches,
halve the batch and retry the same items; the batch sizes used are reported. Nothing is dropped
silently: a dataset result has exactly one entry per input.

:meth:`~InferenceEngine.find_max_batch_size` and :meth:`~InferenceEngine.best_batch_size` choose
a batch size; :func:`softmax`, :func:`top_k` and :meth:`~InferenceEngine.classify` read a
classifier's answer.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, overload

import numpy as np

from pyinfer import _core
from pyinfer._postprocess import Prediction, softmax, top_k, top_k_batch
from pyinfer.backends.base import Device, Model, parse_device
from pyinfer.errors import (
    BufferInUseError,
    DatasetSourceError,
    InferenceError,
    InvalidArgumentError,
    InvalidInputError,
    OutOfMemoryError,
    PyinferError,
    as_out_of_memory,
)
from pyinfer.preprocessors import (
    IMAGE_EXTENSIONS,
    Casting,
    as_array,
    as_item,
    cast_arrays,
    check_item,
    stack_items,
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

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class ItemFailure:
    """An input of a dataset that could not be run.

    Attributes:
        index: Its position in the dataset.
        source: What it was: the file path for a folder, else ``"item N"``.
        reason: Why it failed (the exception's type and message).
    """

    index: int
    source: str
    reason: str


@dataclass(frozen=True)
class ItemResult:
    """One input's result, as :meth:`InferenceEngine.run_dataset` streams them.

    Attributes:
        index: Its position in the dataset.
        source: The file path for a folder, else ``"item N"``.
        outputs: Output name to array (no batch dimension), or ``None`` if it failed.
        error: Why it failed, or ``None``.
    """

    index: int
    source: str
    outputs: Arrays | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the input ran."""
        return self.error is None


@dataclass
class DatasetResult:
    """The result of a dataset run: one entry per input, in input order.

    Attributes:
        outputs: Per input, output name to array (no batch dimension), or ``None`` where the
            input failed (it is then in :attr:`failures`).
        sources: Per input, the file path (folder) or ``"item N"``.
        failures: The inputs that failed, with index, source and reason.
        batch_sizes: The batch size of each model call, in order (padding not counted).
        padded_items: Filler items added to reach a fixed-batch model's batch (their outputs
            were dropped).
        oom_retries: How many times a batch was halved after running out of memory.
        interrupted: Whether the run stopped early (Ctrl-C); the entries so far are kept.
        elapsed_s: Wall time of the run in seconds.
    """

    outputs: list[Arrays | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    padded_items: int = 0
    oom_retries: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    def __len__(self) -> int:
        return len(self.outputs)

    @property
    def succeeded(self) -> int:
        """How many inputs ran."""
        return len(self.outputs) - len(self.failures)

    @property
    def padded(self) -> bool:
        """Whether any batch was padded (a fixed-batch model and a short last batch)."""
        return self.padded_items > 0

    @property
    def items_per_s(self) -> float:
        """Inputs that ran per second of wall time."""
        return self.succeeded / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def stacked(self, name: str | None = None) -> np.ndarray:
        """One output of every input that ran, stacked in input order (failures skipped).

        Args:
            name: The output; the first one by default.

        Returns:
            The stacked array, ``(succeeded, ...)``.

        Raises:
            InvalidArgumentError: If no input ran, or there is no such output.
        """
        done = [o for o in self.outputs if o is not None]
        if not done:
            raise InvalidArgumentError("no input ran: nothing to stack")
        key = next(iter(done[0])) if name is None else name
        if key not in done[0]:
            raise InvalidArgumentError(f"no output {key!r}; outputs are {', '.join(done[0])}")
        return np.stack([o[key] for o in done])

    def _add(self, item: ItemResult) -> None:
        self.outputs.append(item.outputs)
        self.sources.append(item.source)
        if item.error is not None:
            self.failures.append(ItemFailure(item.index, item.source, item.error))


class BatchOutputs(dict[str, np.ndarray]):
    """Output name to stacked array, with how the batch was run.

    Attributes:
        batch_sizes: The batch size of each model call (padding not counted).
        padded_items: Filler items added for a fixed-batch model (their outputs were dropped).
        oom_retries: How many times the batch was halved after running out of memory.
    """

    batch_sizes: list[int]
    padded_items: int
    oom_retries: int


@dataclass(frozen=True)
class BatchMeasurement:
    """Throughput and latency of one batch size (from :meth:`InferenceEngine.best_batch_size`).

    Attributes:
        batch_size: The batch size.
        latency_ms: Median time of one batch call, in milliseconds (``nan`` if it did not fit).
        p90_latency_ms: 90th percentile of the batch call time.
        throughput: Items per second at the median latency.
        out_of_memory: Whether the batch did not fit in memory.
        within_budget: Whether the median latency is within the latency budget (always true
            without one; false when out of memory).
    """

    batch_size: int
    latency_ms: float
    p90_latency_ms: float
    throughput: float
    out_of_memory: bool
    within_budget: bool


@dataclass(frozen=True)
class BatchSizeChoice:
    """The batch size :meth:`InferenceEngine.best_batch_size` chose, and what it measured.

    Attributes:
        batch_size: The batch size with the highest throughput within the budget.
        latency_budget_ms: The budget given, or ``None``.
        measurements: One row per candidate, in the order tried.
    """

    batch_size: int
    latency_budget_ms: float | None
    measurements: tuple[BatchMeasurement, ...]

    def table(self) -> str:
        """The measurements as a small text table."""
        lines = ["batch  median ms    p90 ms   items/s  note"]
        for m in self.measurements:
            note = "out of memory" if m.out_of_memory else ("" if m.within_budget else "too slow")
            if m.batch_size == self.batch_size:
                note = "chosen"
            lines.append(
                f"{m.batch_size:5d} {m.latency_ms:10.3f} {m.p90_latency_ms:9.3f} "
                f"{m.throughput:9.1f}  {note}".rstrip()
            )
        return "\n".join(lines)


@dataclass
class _Stats:
    batch_sizes: list[int] = field(default_factory=list)
    padded_items: int = 0
    oom_retries: int = 0


class _SourceItems(Iterator[tuple[int, str, Any]]):
    """Numbers the items of a user's iterable; an exception it raises ends the items instead.

    The error is kept in :attr:`error` and raised once the batches already read have run, so a
    generator that fails part way loses none of the work done before it.
    """

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source
        self._index = 0
        self.error: Exception | None = None

    def __next__(self) -> tuple[int, str, Any]:
        if self.error is not None:
            raise StopIteration
        try:
            item = next(self._source)
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise StopIteration from exc
        index, self._index = self._index, self._index + 1
        return index, f"item {index}", item


@dataclass
class _Prepared:
    """A batch after preprocessing: the inputs that made it, stacked, and the ones that failed."""

    indices: list[int]
    sources: list[str]
    arrays: Arrays | None
    failures: list[ItemFailure]

    @property
    def count(self) -> int:
        return len(self.indices)


_Chunk = list[tuple[int, str, Any]]


class InferenceEngine:
    """Runs a model on single inputs, batches and datasets, safely and with overlap.

    Args:
        model: A loaded model, or a path to load with ``load_model(path, device=device)``.
        preprocessor: A callable turning one raw item into the model's input (an array or a
            dict of name to array, without batch dimension), such as
            :class:`~pyinfer.preprocessors.ImagePipeline`. Its optional ``check(model)`` runs
            at construction (with ``casting=cast_inputs`` when it takes that keyword and a cast
            is set) and its optional ``collate(items)`` builds batches.
        batch_size: Items per model call in :meth:`run_dataset`. A model with a fixed batch
            uses its own (a different value is logged and replaced).
        device: Where to run; for a given model it must be the model's device (``None``:
            the model's, or the CPU when loading).
        progress: Progress bar in :meth:`run_dataset`: ``None`` shows it when stderr is a
            terminal and the run has more than one batch, ``True`` always, ``False`` never.
        progress_file: Where the bar is written (stderr by default).
        prefetch: Batches prepared ahead of the one running (at least 1).
        num_workers: Preprocessing threads; ``0`` prepares in the calling thread. Default:
            ``min(4, cpu count)``. With threads, the preprocessor is called from several at
            once: it must be thread-safe (the pipelines of :mod:`pyinfer.preprocessors` are).
        cast_inputs: ``None`` (default): a dtype other than the model's is an error;
            ``"safe"`` or ``"same_kind"``: cast under that numpy rule.
        overlap_upload: On CUDA, stage batches in pinned memory and upload them on a side
            stream while the previous batch computes (default: on for CUDA torch models).
        check_preprocessor: Run the preprocessor's ``check(model)`` at construction.
        **load_options: Options for ``load_model`` when ``model`` is a path.

    Threads: engines in several threads may share one model (torch, ONNX Runtime and TensorFlow
    models run calls from several threads at once; a TFLite model's calls take turns). One
    engine should be run by one thread at a time: it keeps per-run state (the batch size
    known to fit after running out of memory, the CUDA staging ring).

    Attributes:
        model: The model.
        preprocessor: The preprocessor, or ``None``.
        batch_size: The dataset batch size in effect.
        device: The model's device.

    Raises:
        InvalidArgumentError: On a bad argument, or a ``device`` other than the model's.
        InvalidInputError: If the preprocessor's output does not fit the model.
    """

    def __init__(
        self,
        model: Model | str | os.PathLike[str],
        preprocessor: Callable[[Any], Any] | None = None,
        batch_size: int = 8,
        device: str | Device | None = None,
        *,
        progress: bool | None = None,
        progress_file: IO[str] | None = None,
        prefetch: int = 2,
        num_workers: int | None = None,
        cast_inputs: Casting | None = None,
        overlap_upload: bool | None = None,
        check_preprocessor: bool = True,
        **load_options: Any,
    ) -> None:
        if isinstance(model, Model):
            if load_options:
                raise InvalidArgumentError(
                    f"load options {sorted(load_options)} given with an already loaded model"
                )
            if device is not None and parse_device(device) != model.device:
                raise InvalidArgumentError(
                    f"device {device!r} disagrees with model '{model.name}' loaded on "
                    f"{model.device}; load it on that device or drop device="
                )
        elif isinstance(model, (str, os.PathLike)):
            from pyinfer.model_loader import load_model

            model = load_model(Path(model), device=device or "cpu", **load_options)
        else:
            raise InvalidArgumentError(
                f"model must be a loaded Model or a path, not {type(model).__name__}"
            )
        if int(batch_size) < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        if int(prefetch) < 1:
            raise InvalidArgumentError(f"prefetch must be >= 1, got {prefetch}")
        if num_workers is not None and int(num_workers) < 0:
            raise InvalidArgumentError(f"num_workers must be >= 0, got {num_workers}")
        if cast_inputs not in (None, "safe", "same_kind"):
            raise InvalidArgumentError(
                f"cast_inputs must be None, 'safe' or 'same_kind', not {cast_inputs!r}"
            )
        if not model.inputs:
            raise InvalidArgumentError(f"model '{model.name}' declares no inputs")
        for spec in model.inputs:
            if spec.shape is not None and len(spec.shape) == 0:
                raise InvalidArgumentError(
                    f"input '{spec.name}' of model '{model.name}' is a scalar: it has no batch "
                    "dimension to batch on"
                )
        self.model: Model = model
        self.preprocessor = preprocessor
        self.device: Device = model.device
        self.fixed_batch: int | None = _fixed_batch(model)
        self.batch_size = int(batch_size)
        if self.fixed_batch is not None and self.batch_size != self.fixed_batch:
            logger.info(
                "model '%s' has a fixed batch of %d: the engine uses it instead of batch_size=%d",
                model.name,
                self.fixed_batch,
                self.batch_size,
            )
            self.batch_size = self.fixed_batch
        self.progress = progress
        self.progress_file = progress_file
        self.prefetch = int(prefetch)
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self.cast_inputs: Casting | None = cast_inputs
        self._oom_limit: int | None = None  # largest batch known to fit after an OOM
        # name, dtype, rank (None: unknown) and the fixed dimensions after the batch, per input
        self._fast_specs = [
            (
                spec.name,
                spec.dtype,
                None if spec.shape is None else len(spec.shape),
                ()
                if spec.shape is None
                else tuple((i, d) for i, d in enumerate(spec.shape) if i and isinstance(d, int)),
            )
            for spec in model.inputs
        ]
        self._collate: Callable[[Sequence[Mapping[str, np.ndarray]]], Arrays] = (
            getattr(preprocessor, "collate", None) or stack_items
        )
        use_overlap = model.device.is_cuda and model.framework in ("torch", "onnxruntime")
        if overlap_upload and not use_overlap:
            logger.info("overlap_upload needs a CUDA torch or ONNX Runtime model; not used")
        self._uploader: _CudaUploader | None = None
        if use_overlap and overlap_upload is not False:
            self._uploader = _CudaUploader(model)
        check = getattr(preprocessor, "check", None)
        if preprocessor is not None and check_preprocessor and callable(check):
            if cast_inputs is not None and _takes_keyword(check, "casting"):
                check(model, casting=cast_inputs)  # the output is cast before it runs
            else:
                check(model)

    # -- single inputs and batches ---------------------------------------------------------

    def predict(self, x: Any) -> Arrays:
        """Runs one input.

        Args:
            x: One raw item (with a preprocessor), or one input without batch dimension: an
                array for a one-input model or a dict of input name to array.

        Returns:
            Output name to array, without batch dimension.

        Raises:
            InvalidInputError: If the input does not fit the model.
            OutOfMemoryError: If even one item does not fit in memory.
            InferenceError: If the model fails.
        """
        out = self.predict_batch([x])
        return {name: value[0] for name, value in out.items()}

    def predict_batch(self, xs: Any) -> BatchOutputs:
        """Runs a batch.

        Args:
            xs: A list of inputs (as for :meth:`predict`), or an already stacked batch: an
                array with the batch first (one-input model; a CPU torch tensor is read as one)
                or a dict of name to such arrays.
                A stacked batch is used as it is (no preprocessor).

        Returns:
            Output name to array with the batch first, one row per input, with how it ran
            (:class:`BatchOutputs`). On a dynamic-batch model the batch is one model call
            (smaller ones after running out of memory); on a fixed-batch model it is split in
            the model's batch and the last chunk padded.

        Raises:
            InvalidInputError: If an input does not fit the model (the message names the input,
                and the item for a list).
            OutOfMemoryError: If even one item does not fit in memory.
            InferenceError: If the model fails.
        """
        if not isinstance(xs, (np.ndarray, Mapping, list, tuple)) and hasattr(xs, "__array__"):
            xs = as_array(xs, f"the batch for model '{self.model.name}'")  # a torch tensor...
        if isinstance(xs, (np.ndarray, Mapping)):
            fast = self._stacked_fast(xs)
            try:
                arrays = fast if fast is not None else self._check_stacked(as_item(self.model, xs))
            except InvalidInputError as exc:
                if self.preprocessor is None:
                    raise
                raise InvalidInputError(
                    f"{exc}. A stacked batch goes to the model as it is, without the "
                    "preprocessor: pass a list of raw items to preprocess them"
                ) from exc
            count = len(next(iter(arrays.values())))
        elif isinstance(xs, (list, tuple)):
            if not xs:
                raise InvalidInputError("predict_batch got an empty list")
            items = [self._prepare_item(x, f" (item {i})") for i, x in enumerate(xs)]
            arrays = self._collate(items)
            count = len(items)
        else:
            raise InvalidInputError(
                "predict_batch takes a list of inputs, a stacked array or a dict of stacked "
                f"arrays, not {type(xs).__name__}"
            )
        stats = _Stats()
        try:
            outputs = self._run_chunks(arrays, count, stats)
        except PyinferError:
            raise
        except Exception as exc:
            raise self._inference_error(exc, count) from exc
        result = BatchOutputs(outputs)
        result.batch_sizes = stats.batch_sizes
        result.padded_items = stats.padded_items
        result.oom_retries = stats.oom_retries
        return result

    def classify(
        self,
        x: Any,
        k: int = 5,
        labels: Sequence[str] | None = None,
        *,
        output: str | None = None,
        apply_softmax: bool | None = None,
    ) -> list[Prediction]:
        """The top ``k`` classes of one input.

        Args:
            x: One input, as for :meth:`predict`.
            k: How many classes.
            labels: One label per class.
            output: The scores output; the first one by default.
            apply_softmax: Turn the scores into probabilities; ``None`` does it unless they
                already are (non-negative, summing to 1).

        Returns:
            Up to ``k`` predictions, best first.

        Raises:
            InvalidArgumentError: On an unknown output or labels that do not match.
        """
        outputs = self.predict(x)
        name = next(iter(outputs)) if output is None else output
        if name not in outputs:
            raise InvalidArgumentError(f"no output {name!r}; outputs are {', '.join(outputs)}")
        scores = np.asarray(outputs[name]).reshape(-1)
        return top_k(scores, k, labels, apply_softmax=apply_softmax)

    # -- datasets --------------------------------------------------------------------------

    @overload
    def run_dataset(self, source: Any, *, stream: Literal[False] = ...) -> DatasetResult: ...

    @overload
    def run_dataset(self, source: Any, *, stream: Literal[True]) -> Iterator[ItemResult]: ...

    def run_dataset(
        self, source: Any, *, stream: bool = False
    ) -> DatasetResult | Iterator[ItemResult]:
        """Runs every input of a dataset, in batches, preprocessing ahead in worker threads.

        Args:
            source: A folder of images (read in sorted name order, extensions
                :data:`~pyinfer.preprocessors.IMAGE_EXTENSIONS`), a numpy array (the first
                axis is the items), a dict of name to such arrays, or any iterable of items.
            stream: Yield an :class:`ItemResult` per input, in input order, as each batch
                finishes, instead of returning everything at the end.

        Returns:
            A :class:`DatasetResult` (one entry per input, in order); with ``stream=True`` an
            iterator of :class:`ItemResult`.

        Raises:
            InvalidArgumentError: If the source is not a dataset (a missing folder, a file, bytes,
                a dict of scalars), or a folder is given without a preprocessor.
            InferenceError: If the model fails on a batch (not out of memory); its
                ``partial_result`` holds the inputs finished before.
            OutOfMemoryError: If even one item does not fit; ``partial_result`` as above.
            KeyboardInterrupt: On Ctrl-C, after stopping the workers; its ``partial_result``
                attribute holds the :class:`DatasetResult` so far (``interrupted=True``).
        """
        items, total = self._enumerate(source)
        if stream:
            return self._iter_results(items, total, _Stats())
        return self._collect(items, total)

    def _collect(self, items: Iterator[tuple[int, str, Any]], total: int | None) -> DatasetResult:
        result = DatasetResult()
        stats = _Stats()
        start = _core.now_ns()
        try:
            for item in self._iter_results(items, total, stats):
                result._add(item)
        except (InferenceError, OutOfMemoryError, KeyboardInterrupt) as exc:
            result.interrupted = isinstance(exc, KeyboardInterrupt)
            self._finish_result(result, stats, start)
            exc.partial_result = result  # type: ignore[union-attr]
            raise
        self._finish_result(result, stats, start)
        return result

    @staticmethod
    def _finish_result(result: DatasetResult, stats: _Stats, start_ns: int) -> None:
        result.batch_sizes = stats.batch_sizes
        result.padded_items = stats.padded_items
        result.oom_retries = stats.oom_retries
        result.elapsed_s = (_core.now_ns() - start_ns) / 1e9

    def _enumerate(self, source: Any) -> tuple[Iterator[tuple[int, str, Any]], int | None]:
        if isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if not folder.is_dir():
                raise InvalidArgumentError(
                    f"dataset {folder} is not a folder; give a folder of images, an array or an "
                    "iterable of inputs"
                )
            if self.preprocessor is None:
                raise InvalidArgumentError(
                    f"a folder of images ({folder}) needs a preprocessor, such as "
                    "ImagePipeline.for_model(model)"
                )
            entries = list(folder.iterdir())
            files = sorted(
                p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
            logger.info("dataset %s: %d image files", folder, len(files))
            subfolders = sum(1 for p in entries if p.is_dir())
            if not files and subfolders:
                logger.warning(
                    "dataset %s has no image files of its own but %d subfolders, which are not "
                    "read (one class per subfolder?): run each subfolder, or pass the files "
                    "as a list, e.g. sorted(Path(folder).rglob('*.jpg'))",
                    folder,
                    subfolders,
                )
            return ((i, str(p), p) for i, p in enumerate(files)), len(files)
        if isinstance(source, np.ndarray):
            if source.ndim == 0:
                raise InvalidArgumentError("a dataset array needs the items on its first axis")
            return ((i, f"item {i}", source[i]) for i in range(len(source))), len(source)
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"a dataset of {type(source).__name__} would be its single bytes; for one encoded "
                "image give [data], for several a list of them"
            )
        if isinstance(source, Mapping):
            arrays = {k: np.asarray(v) for k, v in source.items()}
            scalars = [k for k, v in arrays.items() if v.ndim == 0]
            if scalars or not arrays:
                raise InvalidArgumentError(
                    "a dataset dict needs arrays with the items on their first axis; "
                    + (f"{', '.join(map(repr, scalars))} is a scalar" if scalars else "it is empty")
                )
            lengths = {len(v) for v in arrays.values()}
            if len(lengths) != 1:
                raise InvalidArgumentError(
                    f"dataset arrays have different lengths: "
                    f"{ {k: len(v) for k, v in arrays.items()} }"
                )
            n = lengths.pop()
            gen = ((i, f"item {i}", {k: v[i] for k, v in arrays.items()}) for i in range(n))
            return gen, n
        if isinstance(source, Iterable):
            total = len(source) if isinstance(source, Sized) else None
            return _SourceItems(iter(source)), total
        raise InvalidArgumentError(
            f"cannot run a dataset from a {type(source).__name__}: give a folder, an array or an "
            "iterable of inputs"
        )

    def _iter_results(
        self, items: Iterator[tuple[int, str, Any]], total: int | None, stats: _Stats
    ) -> Iterator[ItemResult]:
        chunks: Iterator[_Chunk] = iter(lambda: list(itertools.islice(items, self.batch_size)), [])
        bar = self._progress_bar(total)
        executor = (
            ThreadPoolExecutor(self.num_workers, thread_name_prefix="pyinfer-prep")
            if self.num_workers > 0
            else None
        )
        done = 0
        finished = False
        try:
            for prepared, outputs in self._execute(self._prepared(chunks, executor), stats):
                merged: list[ItemResult] = [
                    ItemResult(f.index, f.source, None, f.reason) for f in prepared.failures
                ]
                for row, (index, source) in enumerate(
                    zip(prepared.indices, prepared.sources, strict=True)
                ):
                    assert outputs is not None  # a batch with inputs has outputs
                    merged.append(
                        ItemResult(index, source, {k: v[row] for k, v in outputs.items()})
                    )
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

    def _progress_bar(self, total: int | None) -> Any:
        show = self.progress
        if show is None:
            stream = self.progress_file or sys.stderr
            long_run = total is None or total > self.batch_size
            show = bool(getattr(stream, "isatty", lambda: False)()) and long_run
        if not show:
            return None
        from tqdm import tqdm

        return tqdm(
            total=total,
            file=self.progress_file or sys.stderr,
            unit="item",
            desc=self.model.name,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    def _prepared(
        self, chunks: Iterator[_Chunk], executor: ThreadPoolExecutor | None
    ) -> Iterator[_Prepared]:
        if executor is None:
            for chunk in chunks:
                yield self._prepare_chunk(chunk)
            return
        queue: deque[Future[_Prepared]] = deque()
        for chunk in chunks:
            try:
                queue.append(executor.submit(self._prepare_chunk, chunk))
            except RuntimeError as exc:  # a worker thread could not start (memory, limits)
                logger.warning(
                    "model '%s': cannot start a preprocessing thread (%s); preparing the "
                    "remaining batches in the calling thread",
                    self.model.name,
                    exc,
                )
                while queue:
                    yield queue.popleft().result()
                yield self._prepare_chunk(chunk)
                for rest in chunks:
                    yield self._prepare_chunk(rest)
                return
            if len(queue) > self.prefetch:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()

    def _prepare_chunk(self, chunk: _Chunk) -> _Prepared:
        indices: list[int] = []
        sources: list[str] = []
        ready: list[Arrays] = []
        failures: list[ItemFailure] = []
        for index, source, raw in chunk:
            try:
                where = f" (item {index})" if source == f"item {index}" else f" ({source})"
                ready.append(self._prepare_item(raw, where))
            except Exception as exc:  # a bad input is reported, and the run goes on
                failures.append(ItemFailure(index, source, f"{type(exc).__name__}: {exc}"))
                continue
            indices.append(index)
            sources.append(source)
        arrays: Arrays | None = None
        if ready:
            try:
                arrays = self._collate(ready)
            except Exception as exc:
                reason = f"batch could not be assembled: {type(exc).__name__}: {exc}"
                failures.extend(
                    ItemFailure(i, s, reason) for i, s in zip(indices, sources, strict=True)
                )
                indices, sources = [], []
        return _Prepared(indices, sources, arrays, failures)

    def _prepare_item(self, raw: Any, where: str) -> Arrays:
        value = self.preprocessor(raw) if self.preprocessor is not None else raw
        return check_item(
            self.model, as_item(self.model, value), casting=self.cast_inputs, where=where
        )

    def _stacked_fast(self, xs: Any) -> Arrays | None:
        """A stacked batch checked cheaply, or ``None`` for the full check and its messages.

        The common case passes: right names, dtypes, ranks and fixed dimensions, one batch
        size, C-contiguous arrays.
        """
        given: Mapping[str, Any] = (
            {self._fast_specs[0][0]: xs}
            if isinstance(xs, np.ndarray) and len(self._fast_specs) == 1
            else xs
        )
        if not isinstance(given, Mapping) or len(given) != len(self._fast_specs):
            return None
        count = -1
        for name, dtype, rank, fixed in self._fast_specs:
            value = given.get(name)
            if (
                not isinstance(value, np.ndarray)
                or value.dtype != dtype
                or not value.flags.c_contiguous
                or (rank is not None and value.ndim != rank)
                or value.ndim == 0
                or any(value.shape[axis] != size for axis, size in fixed)
            ):
                return None
            if count not in (-1, value.shape[0]):
                return None
            count = value.shape[0]
        if count < 1:
            return None
        return {name: given[name] for name, _, _, _ in self._fast_specs}

    def _check_stacked(self, given: Mapping[str, Any]) -> Arrays:
        arrays = {k: np.asarray(v) for k, v in given.items()}
        if self.cast_inputs is not None:
            arrays = cast_arrays(arrays, self.model.inputs, self.cast_inputs)
        lengths = {len(v) if v.ndim else 0 for v in arrays.values()}
        if len(lengths) != 1 or 0 in lengths:
            sizes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in arrays.items())
            raise InvalidInputError(
                f"stacked inputs of model '{self.model.name}' must share one non-zero batch "
                f"size on their first axis, got {sizes}"
            )
        # The first row stands for all: the same names, dtypes and per-item shapes.
        try:
            check_item(self.model, {k: v[0] for k, v in arrays.items()}, where=" (stacked batch)")
        except InvalidInputError as exc:
            if "per item" not in str(exc):
                raise
            sizes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in arrays.items())
            raise InvalidInputError(
                f"{exc} (the stacked batch is {sizes}, its first axis taken as the batch; for "
                "one input without a batch axis use predict)"
            ) from exc
        return {spec.name: np.ascontiguousarray(arrays[spec.name]) for spec in self.model.inputs}

    # -- running the model -----------------------------------------------------------------

    def _execute(
        self, batches: Iterator[_Prepared], stats: _Stats
    ) -> Iterator[tuple[_Prepared, Arrays | None]]:
        """Runs prepared batches in order; on CUDA overlaps the next upload with compute."""
        uploader = self._uploader
        if uploader is None:
            for prepared in batches:
                yield prepared, self._run_prepared(prepared, stats)
            return
        current = next(batches, None)
        staged = self._stage(uploader, current)
        while current is not None:
            pending: Any = None
            if staged is not None:
                try:
                    pending = self.model.run_native(staged)
                except Exception as exc:
                    self._back_off_or_raise(exc, current.count, stats)
            upcoming = next(batches, None)
            staged_next = self._stage(uploader, upcoming)  # uploads while `pending` computes
            outputs: Arrays | None
            if pending is not None:
                try:
                    outputs = self._to_rows(self.model.to_numpy(pending), current.count, stats)
                except Exception as exc:
                    self._back_off_or_raise(exc, current.count, stats)
                    outputs = self._run_prepared(current, stats)
            else:
                outputs = self._run_prepared(current, stats)
            yield current, outputs
            current, staged = upcoming, staged_next

    def _back_off_or_raise(self, exc: Exception, count: int, stats: _Stats) -> None:
        """After a failed staged run: halve the batch on out-of-memory, else raise."""
        if as_out_of_memory(exc) is None:
            raise self._inference_error(exc, count) from exc
        self._after_oom(count, stats)

    def _stage(self, uploader: _CudaUploader, prepared: _Prepared | None) -> Any:
        if prepared is None or prepared.arrays is None:
            return None
        if self._oom_limit is not None and prepared.count > self._oom_limit:
            return None  # too big since an OOM: the plain path splits it
        arrays = self._pad(prepared.arrays, prepared.count)
        return uploader.stage(arrays)

    def _to_rows(self, outputs: Arrays, count: int, stats: _Stats) -> Arrays:
        stats.batch_sizes.append(count)
        if self.fixed_batch is not None and count < self.fixed_batch:
            stats.padded_items += self.fixed_batch - count
        return self._cut(outputs, count)

    def _run_prepared(self, prepared: _Prepared, stats: _Stats) -> Arrays | None:
        if prepared.arrays is None:
            return None
        try:
            return self._run_chunks(prepared.arrays, prepared.count, stats)
        except PyinferError:
            raise
        except Exception as exc:
            raise self._inference_error(exc, prepared.count) from exc

    def _inference_error(self, exc: BaseException, count: int) -> InferenceError | OutOfMemoryError:
        """The typed error for a failure around a model call (memory running out included)."""
        if as_out_of_memory(exc) is not None:  # e.g. joining the outputs of a backed-off batch
            return OutOfMemoryError(
                f"model '{self.model.name}' on {self.device} ran out of memory on a batch of "
                f"{count}: {type(exc).__name__}: {exc}"
            )
        return InferenceError(self._failure_text(exc, count))

    def _failure_text(self, exc: BaseException, count: int) -> str:
        return (
            f"model '{self.model.name}' failed on a batch of {count}: {type(exc).__name__}: {exc}"
        )

    def _run_chunks(self, arrays: Arrays, count: int, stats: _Stats) -> Arrays:
        """Runs ``count`` stacked items, in chunks that fit, halving after out-of-memory."""
        parts: list[Arrays] = []
        start = 0
        while start < count:
            if self.fixed_batch is not None:
                size = min(self.fixed_batch, count - start)
            else:
                size = min(count - start, self._oom_limit or count)
            chunk = (
                arrays if size == count else {k: v[start : start + size] for k, v in arrays.items()}
            )
            try:
                out = self._call(chunk, size)
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
                self._after_oom(size, stats)
                continue
            stats.batch_sizes.append(size)
            if self.fixed_batch is not None and size < self.fixed_batch:
                stats.padded_items += self.fixed_batch - size
            parts.append(out)
            start += size
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _after_oom(self, size: int, stats: _Stats) -> None:
        if size <= 1 or self.fixed_batch is not None:
            raise OutOfMemoryError(
                f"model '{self.model.name}' on {self.device} ran out of memory on a batch of "
                f"{size} and cannot use a smaller one"
            )
        new = max(1, size // 2)
        self._oom_limit = new
        stats.oom_retries += 1
        logger.warning(
            "model '%s' ran out of memory on a batch of %d; retrying the same items in batches "
            "of %d",
            self.model.name,
            size,
            new,
        )
        self._free_memory()

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.is_cuda and self.model.framework == "torch":
            import torch

            torch.cuda.empty_cache()

    def _pad(self, arrays: Arrays, count: int) -> Arrays:
        if self.fixed_batch is None or count >= self.fixed_batch:
            return arrays
        fill = self.fixed_batch - count
        logger.info(
            "model '%s' takes batches of %d: padding a batch of %d with %d copies of its last item",
            self.model.name,
            self.fixed_batch,
            count,
            fill,
        )
        return {k: np.concatenate([v, np.repeat(v[-1:], fill, axis=0)]) for k, v in arrays.items()}

    def _cut(self, outputs: Arrays, count: int) -> Arrays:
        full = count if self.fixed_batch is None else max(count, self.fixed_batch)
        out: Arrays = {}
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != full:
                raise InferenceError(
                    f"output '{name}' of model '{self.model.name}' has shape {value.shape}, "
                    f"not a batch of {full} first: the engine cannot split it per input"
                )
            out[name] = value if full == count else value[:count]
        return out

    def _call(self, arrays: Arrays, count: int) -> Arrays:
        """One model call on a batch that fits (padded for a fixed-batch model)."""
        model = self.model
        outputs = model.to_numpy(model.run_native(model.to_native(self._pad(arrays, count))))
        return self._cut(outputs, count)

    # -- choosing a batch size -------------------------------------------------------------

    def _example_batch(self, example: Any, size: int) -> Arrays:
        if example is None:
            try:
                one = {k: v[0] for k, v in self.model.example_inputs(1).items()}
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    f"{exc}; or pass example= (one input, as for predict)"
                ) from exc
        else:
            one = self._prepare_item(example, " (example)")
        return {k: np.repeat(v[None], size, axis=0) for k, v in one.items()}

    def _fits(self, example: Any, size: int, retries: int) -> bool:
        for attempt in range(retries + 1):
            try:
                self._call(self._example_batch(example, size), size)
                return True
            except Exception as exc:
                if as_out_of_memory(exc) is None:
                    raise
                logger.info(
                    "batch %d: out of memory (attempt %d of %d)", size, attempt + 1, retries + 1
                )
                self._free_memory()
        return False

    def find_max_batch_size(
        self, limit: int = 1024, *, start: int = 1, example: Any = None, retries: int = 1
    ) -> int:
        """The largest batch size that runs without running out of memory, up to ``limit``.

        Doubles from ``start`` until a batch does not fit or ``limit`` is reached, then binary
        searches between the last size that fit and the first that did not. A size that runs
        out of memory is tried ``retries`` more times after freeing caches (allocators can fail
        once and succeed after a collection), so a flaky failure does not end the search.

        Args:
            limit: The largest size to try.
            start: The first size.
            example: One input (raw, as for :meth:`predict`) to repeat; random inputs matching
                the model's specs by default.
            retries: Extra attempts for a size that ran out of memory.

        Returns:
            The largest size that fit (the model's batch for a fixed-batch model).

        Raises:
            InvalidArgumentError: If ``limit < start`` or ``start < 1``.
            OutOfMemoryError: If ``start`` itself does not fit.
        """
        if start < 1 or limit < start:
            raise InvalidArgumentError(f"need 1 <= start <= limit, got start={start} limit={limit}")
        if self.fixed_batch is not None:
            return self.fixed_batch
        if not self._fits(example, start, retries):
            raise OutOfMemoryError(
                f"model '{self.model.name}' runs out of memory at batch {start} on {self.device}"
            )
        good, bad = start, None
        while good < limit:
            size = min(good * 2, limit)
            if self._fits(example, size, retries):
                good = size
            else:
                bad = size
                break
        if bad is not None:
            while bad - good > 1:
                mid = (good + bad) // 2
                if self._fits(example, mid, retries):
                    good = mid
                else:
                    bad = mid
        logger.info("model '%s': largest batch that fits is %d", self.model.name, good)
        return good

    def best_batch_size(
        self,
        latency_budget_ms: float | None = None,
        candidates: Iterable[int] | None = None,
        *,
        iterations: int = 10,
        warmup: int = 2,
        example: Any = None,
    ) -> BatchSizeChoice:
        """The batch size with the highest throughput whose median batch latency fits a budget.

        Each candidate's batch call (host inputs to host outputs, as :meth:`predict_batch`
        runs it) is timed ``iterations`` times after ``warmup`` calls with the core's
        :func:`~pyinfer.time_calls`. Candidates that run out of memory are recorded and
        skipped.

        Args:
            latency_budget_ms: The most a batch may take (median), or ``None``.
            candidates: Batch sizes to try; powers of two up to 64 by default (just the
                model's batch for a fixed-batch model).
            iterations: Timed calls per candidate.
            warmup: Untimed calls per candidate first.
            example: One input to repeat, as for :meth:`find_max_batch_size`.

        Returns:
            The choice and the measurements.

        Raises:
            InvalidArgumentError: On empty or non-positive candidates, or when no candidate
                fits the budget (the message gives the fastest latency seen).
        """
        if self.fixed_batch is not None:
            sizes = [self.fixed_batch]
        else:
            given = (1, 2, 4, 8, 16, 32, 64) if candidates is None else candidates
            sizes = sorted({int(c) for c in given})
        if not sizes or sizes[0] < 1:
            raise InvalidArgumentError(f"candidates must be positive batch sizes, got {sizes}")
        rows: list[BatchMeasurement] = []
        for size in sizes:
            batch = self._example_batch(example, size)
            try:
                recorder = _core.time_calls(
                    _bound_call(self._call, batch, size), iterations, warmup
                )
            except Exception as exc:
                if as_out_of_memory(exc) is None:
                    raise
                self._free_memory()
                rows.append(BatchMeasurement(size, float("nan"), float("nan"), 0.0, True, False))
                continue
            summary = recorder.summary((50.0, 90.0))
            median_ms = summary.percentile(50.0) / 1e6
            within = latency_budget_ms is None or median_ms <= latency_budget_ms
            rows.append(
                BatchMeasurement(
                    size,
                    median_ms,
                    summary.percentile(90.0) / 1e6,
                    size / (median_ms / 1e3) if median_ms > 0 else float("inf"),
                    False,
                    within,
                )
            )
        fitting = [r for r in rows if r.within_budget]
        if not fitting:
            measured = [r.latency_ms for r in rows if not r.out_of_memory]
            fastest = f"{min(measured):.3f} ms" if measured else "none fit in memory"
            raise InvalidArgumentError(
                f"no batch size of {sizes} meets the latency budget of {latency_budget_ms} ms "
                f"(fastest: {fastest})"
            )
        best = max(fitting, key=lambda r: r.throughput)
        return BatchSizeChoice(best.batch_size, latency_budget_ms, tuple(rows))

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the pinned staging memory (the model stays loaded)."""
        if self._uploader is not None:
            self._uploader.close()
            self._uploader = None

    def __enter__(self) -> InferenceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<InferenceEngine {self.model.name!r} on {self.device}, batch_size={self.batch_size}"
            f"{'' if self.fixed_batch is None else ' (fixed)'}, preprocessor={self.preprocessor!r}>"
        )


def _bound_call(
    call: Callable[[Arrays, int], Arrays], batch: Arrays, size: int
) -> Callable[[], Arrays]:
    def run() -> Arrays:
        return call(batch, size)

    return run


def _takes_keyword(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _fixed_batch(model: Model) -> int | None:
    sizes = {
        spec.shape[0]
        for spec in model.inputs
        if spec.shape is not None and spec.shape and isinstance(spec.shape[0], int)
    }
    if not sizes:
        return None
    if len(sizes) > 1:
        raise InvalidArgumentError(
            f"model '{model.name}' inputs have different fixed batch sizes {sorted(sizes)}"
        )
    return int(sizes.pop())


_ALIGN = 256  # bytes between tensors staged in one pinned slot


class _CudaUploader:
    """Stages batches in a pinned ring and uploads them to the model's GPU (CUDA only).

    torch: the copy is enqueued with ``non_blocking=True`` on a side stream, and the model's
    compute stream waits on an event recorded after it, so the upload of batch k+1 overlaps the
    compute of batch k. ONNX Runtime: the batch is copied from pinned memory into ``OrtValue``s
    on the device (the backend then runs through its IO binding).
    """

    def __init__(self, model: Model, *, allow_pageable: bool = False) -> None:
        self.model = model
        self.allow_pageable = allow_pageable  # tests run the staging logic without a GPU
        self.ring: Any = None
        self._side: Any = None
        self._torch: Any = None
        if model.framework == "torch":
            from pyinfer.backends.frameworks import import_torch

            self._torch = import_torch()
            self._tdev = self._torch.device(str(model.device))
            self._side = self._torch.cuda.Stream(device=self._tdev)

    def _slot_views(self, arrays: Arrays) -> tuple[int, Arrays]:
        need = sum(-(-a.nbytes // _ALIGN) * _ALIGN for a in arrays.values())
        if self.ring is None or self.ring.slot_nbytes < need:
            self.close()
            self.ring = _core.PinnedRing(
                need, 2, device=self.model.device.index, allow_pageable=self.allow_pageable
            )
        index = self.ring.acquire()
        raw = self.ring.slot(index).numpy(np.uint8)
        views: Arrays = {}
        offset = 0
        for name, array in arrays.items():
            view = raw[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(view, array)
            views[name] = view
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        return index, views

    def stage(self, arrays: Arrays) -> dict[str, Any]:
        """Copies a batch into a pinned slot and starts its upload; returns device tensors."""
        index, views = self._slot_views(arrays)
        if self._torch is None:  # ONNX Runtime: synchronous copy out of pinned memory
            try:
                return self.model.to_native(views)
            finally:
                self.ring.release(index, 0)
        torch = self._torch
        compute = torch.cuda.current_stream(self._tdev)
        with torch.cuda.stream(self._side):
            tensors = {
                k: torch.from_numpy(v).to(self._tdev, non_blocking=True) for k, v in views.items()
            }
            uploaded = torch.cuda.Event()
            uploaded.record(self._side)
        self.ring.release(index, int(self._side.cuda_stream))
        compute.wait_event(uploaded)
        channels_last = bool(self.model.options.get("channels_last"))
        out: dict[str, Any] = {}
        for name, tensor in tensors.items():
            tensor.record_stream(compute)  # the allocator must not reuse it before compute ends
            laid_out = tensor
            if channels_last and tensor.dim() == 4:
                laid_out = tensor.contiguous(memory_format=torch.channels_last)
            out[name] = laid_out
        return out

    def close(self) -> None:
        """Waits for uploads in flight and frees the ring (or leaves it to the last view)."""
        if self.ring is not None:
            try:
                self.ring.close()
            except BufferInUseError:
                # A view is still alive (say, in the traceback of an error the caller holds):
                # the ring's memory goes when the last view does.
                logger.debug("pinned ring still has views; freed when they are")
            self.ring = None
