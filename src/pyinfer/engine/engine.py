"""The inference engine: single inputs, batches and whole datasets through a loaded model.

:class:`InferenceEngine` wraps a :class:`~pyinfer.backends.base.Model` (or loads one from a
path) with an optional preprocessor (see :mod:`pyinfer.preprocess`) and runs:

* :meth:`~InferenceEngine.predict`: one input, without its batch dimension;
* :meth:`~InferenceEngine.predict_batch`: a list of inputs or an already stacked batch, as one
  model call on a model with a dynamic batch; split into the model's batch (and the last chunk
  padded, then cut) on a model with a fixed batch;
* :meth:`~InferenceEngine.run_dataset`: an iterable, a numpy array or a folder of images, in
  batches of ``batch_size``, results in input order (or streamed as batches finish), with a
  progress bar. Preprocessing of the next batches runs in worker threads while the model runs
  the current one; on CUDA (torch) each batch is staged in a pinned-memory ring slot and
  uploaded on a side stream while the previous batch computes.

Each input's items are stacked along its own batch axis (a state ``(2, batch, 128)`` on axis 1),
an input without one (a 0-d sample rate) is shared by a model call (items of different values
run in separate calls, or it is given once: ``input_values``), and outputs are split back along
each output's batch axis (:mod:`~pyinfer.engine.axes`).

Every input is checked against the model's input specs before it runs (names, shapes with
dynamic dimensions, dtypes); dtypes are cast only when asked (``cast_inputs="safe"``). An input
that fails to decode, preprocess or validate in a dataset is reported with its index and reason,
and the run goes on. An out-of-memory error from any framework makes the engine free caches,
halve the batch and retry the same items; the batch sizes used are reported. Nothing is dropped
silently: a dataset result has exactly one entry per input.

:meth:`~InferenceEngine.find_max_batch_size` and :meth:`~InferenceEngine.best_batch_size` choose
a batch size; :func:`softmax`, :func:`top_k` and :meth:`~InferenceEngine.classify` read a
classifier's answer.

The work is shared out: listing a dataset (:mod:`~pyinfer.engine.dataset`), preparing
batches (:mod:`~pyinfer.engine.prefetch`), checking and padding them
(:mod:`~pyinfer.engine.batching`), each tensor's batch axis (:mod:`~pyinfer.engine.axes`),
running them with out-of-memory back-off
(:mod:`~pyinfer.engine.runner`), running a whole dataset through both
(:mod:`~pyinfer.engine.pipeline`), uploading batches (:mod:`~pyinfer.engine.upload`) and
choosing a batch size (:mod:`~pyinfer.engine.batch_size`).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, overload

import numpy as np

from pyinfer.backends.base import Device, Model, parse_device
from pyinfer.engine.axes import GivenValues
from pyinfer.engine.batch_size import (
    candidate_sizes,
    choose_batch_size,
    largest_fitting_batch,
    measure_batch_sizes,
)
from pyinfer.engine.batching import StackedBatchCheck, fixed_batch_of
from pyinfer.engine.dataset import Item, list_source
from pyinfer.engine.pipeline import collect, iter_results, progress_bar
from pyinfer.engine.postprocess import Prediction, top_k
from pyinfer.engine.prefetch import BatchPreparer
from pyinfer.engine.results import (
    Arrays,
    BatchOutputs,
    BatchSizeChoice,
    DatasetResult,
    ItemResult,
    RunStats,
)
from pyinfer.engine.runner import BatchRunner
from pyinfer.engine.upload import _CudaUploader
from pyinfer.errors import (
    InvalidArgumentError,
    InvalidInputError,
)
from pyinfer.preprocess import Casting, as_array

__all__ = ["InferenceEngine"]

logger = logging.getLogger(__name__)


class InferenceEngine:
    """Runs a model on single inputs, batches and datasets, safely and with overlap.

    Args:
        model: A loaded model, or a path to load with ``load_model(path, device=device)``.
        preprocessor: A callable turning one raw item into the model's input (an array or a
            dict of name to array, without batch dimension), such as
            :class:`~pyinfer.preprocess.ImagePipeline`. Its optional ``check(model)`` runs
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
            once: it must be thread-safe (the pipelines of :mod:`pyinfer.preprocess` are).
        cast_inputs: ``None`` (default): a dtype other than the model's is an error;
            ``"safe"`` or ``"same_kind"``: cast under that numpy rule.
        overlap_upload: On CUDA, stage batches in pinned memory and upload them on a side
            stream while the previous batch computes (default: on for CUDA torch models).
        check_preprocessor: Run the preprocessor's ``check(model)`` at construction.
        input_values: Inputs given once, by name, for every item that does not give them
            itself: a shared input's value (``{"sr": 16000}`` for a 0-d sample rate), or one
            item's value of an input with a batch axis. Items may then leave them out, and a
            model whose inputs are all given but one takes a bare array for that one.
        output_batch_axes: Output name to the axis that holds its batch, for an output whose
            batch axis the engine cannot tell (see :class:`~pyinfer.engine.axes.OutputAxes`).
        **load_options: Options for ``load_model`` when ``model`` is a path.

    Batch axes: items are stacked along each input's own batch axis
    (:attr:`~pyinfer.backends.base.TensorSpec.batch_axis`: an item ``(2, 128)`` of a state
    ``(2, batch, 128)`` makes a batch ``(2, 3, 128)``), and outputs are split back along each
    output's. An input without a batch axis (a 0-d sample rate) is shared by a batch: items
    that give it different values are run in separate model calls (consecutive items of equal
    values together), in order, never merged.

    Threads: engines in several threads may share one model (torch, ONNX Runtime and TensorFlow
    models run calls from several threads at once; a TFLite model's calls take turns). One
    engine should be run by one thread at a time: it keeps per-run state (the batch size
    known to fit after running out of memory, the CUDA staging ring).

    Attributes:
        model: The model.
        preprocessor: The preprocessor, or ``None``.
        batch_size: The dataset batch size in effect.
        device: The model's device.
        input_values: The inputs given once, by name, as arrays of the inputs' dtypes.

    Raises:
        InvalidArgumentError: On a bad argument, a ``device`` other than the model's, or an
            ``input_values`` entry that is not an input or does not fit it.
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
        input_values: Mapping[str, Any] | None = None,
        output_batch_axes: Mapping[str, int] | None = None,
        **load_options: Any,
    ) -> None:
        model = _loaded_model(model, device, load_options)
        _check_settings(model, batch_size, prefetch, num_workers, cast_inputs)
        self.model: Model = model
        self.preprocessor = preprocessor
        self.device: Device = model.device
        self.fixed_batch: int | None = fixed_batch_of(model)
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
        self._given = GivenValues(model, input_values or {}, preprocessor)
        self.input_values: dict[str, np.ndarray] = self._given.values
        self._stacked = StackedBatchCheck(model, cast_inputs, self.input_values)
        self._preparer = BatchPreparer(
            model, self._given if self.input_values else preprocessor, cast_inputs
        )
        self._runner = BatchRunner(
            model, self.fixed_batch, _output_axes(model, output_batch_axes or {})
        )
        use_overlap = model.supports_overlapped_upload
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
        return self.predict_batch([x]).item(0)

    def predict_batch(self, xs: Any) -> BatchOutputs:
        """Runs a batch.

        Args:
            xs: A list of inputs (as for :meth:`predict`), or an already stacked batch: an
                array with the batch first (one-input model; a CPU torch tensor is read as one)
                or a dict of name to arrays as the model takes them (each input's items on
                its batch axis, a shared input once; those in ``input_values`` may be left
                out). A stacked batch is used as it is (no preprocessor).

        Returns:
            Output name to array as the model gives it for the whole batch, each output's
            items on its batch axis (first for most; ``BatchOutputs.batch_axes`` says where,
            ``BatchOutputs.item(i)`` gives input ``i``'s), with how it ran
            (:class:`BatchOutputs`). On a dynamic-batch model the batch is one model call
            (smaller ones after running out of memory, and one per run of equal values of a
            shared input); on a fixed-batch model it is split in the model's batch and the
            last chunk padded.

        Raises:
            InvalidInputError: If an input does not fit the model (the message names the input,
                and the item for a list).
            OutOfMemoryError: If even one item does not fit in memory.
            InferenceError: If the model fails.
        """
        if not isinstance(xs, (np.ndarray, Mapping, list, tuple)) and hasattr(xs, "__array__"):
            xs = as_array(xs, f"the batch for model '{self.model.name}'")  # a torch tensor...
        if isinstance(xs, (np.ndarray, Mapping)):
            fast = self._stacked.fast(xs)
            try:
                arrays = fast if fast is not None else self._stacked.full(self._given.named(xs))
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
            items = [self._preparer.item(x, f" (item {i})") for i, x in enumerate(xs)]
            arrays = self._preparer.collate(items)
            count = len(items)
        else:
            raise InvalidInputError(
                "predict_batch takes a list of inputs, a stacked array or a dict of stacked "
                f"arrays, not {type(xs).__name__}"
            )
        stats = RunStats()
        rows = self._runner.run_batch(arrays, count, stats)
        known = self._runner.output_axes.axes
        axes = {k: known.get(k, 0) for k in rows}
        result = BatchOutputs(
            rows
            if not any(axes.values())
            else {k: v if axes[k] == 0 else np.moveaxis(v, 0, axes[k]) for k, v in rows.items()}
        )
        result.batch_axes = axes
        stats.copy_to(result)
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
                :data:`~pyinfer.preprocess.IMAGE_EXTENSIONS`), a numpy array (the first
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
        items, total = list_source(source, has_preprocessor=self.preprocessor is not None)
        if stream:
            return self._iter_results(items, total, RunStats())
        return collect(lambda stats: self._iter_results(items, total, stats))

    def _iter_results(
        self, items: Iterator[Item], total: int | None, stats: RunStats
    ) -> Iterator[ItemResult]:
        return iter_results(
            items,
            stats,
            preparer=self._preparer,
            runner=self._runner,
            uploader=self._uploader,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            prefetch=self.prefetch,
            make_bar=lambda: progress_bar(
                self.progress, self.progress_file, total, self.batch_size, self.model.name
            ),
        )

    # -- choosing a batch size -------------------------------------------------------------

    def _example_batch(self, example: Any, size: int) -> Arrays:
        """``size`` copies of one item, every input's items first (as the runner takes them)."""
        if example is None:
            try:
                batch = self.model.example_inputs(1)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    f"{exc}; or pass example= (one input, as for predict)"
                ) from exc
            layout = self._runner.layout
            one = {
                k: v if layout.axes.get(k, 0) is None else np.take(v, 0, axis=layout.axes[k])
                for k, v in batch.items()
            }
            one.update(self.input_values)  # a sample rate that random values would miss
        else:
            one = self._preparer.item(example, " (example)")
        return {k: np.repeat(v[None], size, axis=0) for k, v in one.items()}

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
        return largest_fitting_batch(
            self._runner,
            lambda size: self._example_batch(example, size),
            start=start,
            limit=limit,
            retries=retries,
        )

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
        sizes = candidate_sizes(self.fixed_batch, candidates)
        rows = measure_batch_sizes(
            self._runner,
            lambda size: self._example_batch(example, size),
            sizes,
            iterations=iterations,
            warmup=warmup,
            latency_budget_ms=latency_budget_ms,
        )
        return choose_batch_size(rows, sizes, latency_budget_ms)

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


def _loaded_model(
    model: Model | str | os.PathLike[str], device: str | Device | None, load_options: dict[str, Any]
) -> Model:
    """``model`` checked against ``device``, or loaded from its path onto it."""
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
        return model
    if isinstance(model, (str, os.PathLike)):
        from pyinfer.loading import load_model

        return load_model(Path(model), device=device or "cpu", **load_options)
    raise InvalidArgumentError(
        f"model must be a loaded Model or a path, not {type(model).__name__}"
    )


def _check_settings(
    model: Model, batch_size: int, prefetch: int, num_workers: int | None, cast_inputs: Any
) -> None:
    """Raises :class:`InvalidArgumentError` on a bad engine setting or a model without inputs."""
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


def _output_axes(model: Model, given: Mapping[str, int]) -> dict[str, int]:
    """``output_batch_axes`` checked: integers, and names of outputs when they are declared."""
    names = model.output_names()
    out: dict[str, int] = {}
    for name, axis in given.items():
        if names and name not in names:
            raise InvalidArgumentError(
                f"output_batch_axes names {name!r}, which is not an output of model "
                f"'{model.name}' ({', '.join(names)})"
            )
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis < 0:
            raise InvalidArgumentError(
                f"output_batch_axes[{name!r}] must be an axis (an integer >= 0), not {axis!r}"
            )
        out[name] = int(axis)
    return out


def _takes_keyword(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
