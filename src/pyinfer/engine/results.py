"""What the engine gives back: per-input results, dataset and batch results, batch-size choices.

Plain data, no model calls: :class:`ItemResult` and :class:`ItemFailure` per input,
:class:`DatasetResult` for a dataset run, :class:`BatchOutputs` for a batch, and
:class:`BatchMeasurement` / :class:`BatchSizeChoice` for the batch-size search;
:class:`RunStats` collects how a run's batches went while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pyinfer.errors import InvalidArgumentError

__all__ = [
    "Arrays",
    "BatchMeasurement",
    "BatchOutputs",
    "BatchSizeChoice",
    "DatasetResult",
    "ItemFailure",
    "ItemResult",
    "RunStats",
]

#: Input or output name to array.
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

    def stacked(self, name: str | None = None, *, fill: float | None = math.nan) -> np.ndarray:
        """One output of every input, stacked in input order: row ``i`` is input ``i``'s.

        A failed input's row is ``fill`` (NaN by default), so rows stay aligned with the
        inputs; :attr:`succeeded_mask` says which rows ran. An integer or boolean output has no
        NaN: give an integer ``fill`` (such as ``-1``) for it, or ``fill=None`` to leave the
        failed rows out (the rows are then those of :attr:`succeeded_mask`, no longer aligned).

        Args:
            name: The output; the first one by default.
            fill: The value of a failed input's row, or ``None`` to skip failed inputs.

        Returns:
            The stacked array, ``(len(outputs), ...)`` (``(succeeded, ...)`` with
            ``fill=None``).

        Raises:
            InvalidArgumentError: If no input ran, there is no such output, or ``fill`` does
                not fit the output's dtype (NaN for integers).
        """
        done = [o for o in self.outputs if o is not None]
        if not done:
            raise InvalidArgumentError("no input ran: nothing to stack")
        key = next(iter(done[0])) if name is None else name
        if key not in done[0]:
            raise InvalidArgumentError(f"no output {key!r}; outputs are {', '.join(done[0])}")
        ran = np.stack([o[key] for o in done])
        if fill is None or len(done) == len(self.outputs):
            return ran
        if ran.dtype.kind != "f" and (isinstance(fill, float) and not float(fill).is_integer()):
            raise InvalidArgumentError(
                f"output {key!r} is {ran.dtype.name}, which has no {fill!r} for the rows of "
                f"the {len(self.outputs) - len(done)} failed input(s): give stacked(fill=-1) "
                "or another integer, or fill=None to leave them out"
            )
        out = np.full((len(self.outputs), *ran.shape[1:]), fill, dtype=ran.dtype)
        out[self.succeeded_mask] = ran
        return out

    @property
    def succeeded_mask(self) -> np.ndarray:
        """One bool per input, ``True`` where it ran (the rows of :meth:`stacked` it fills)."""
        return np.array([o is not None for o in self.outputs], dtype=bool)

    def _add(self, item: ItemResult) -> None:
        self.outputs.append(item.outputs)
        self.sources.append(item.source)
        if item.error is not None:
            self.failures.append(ItemFailure(item.index, item.source, item.error))


class BatchOutputs(dict[str, np.ndarray]):
    """Output name to stacked array, as the model gives it, with how the batch was run.

    Attributes:
        batch_axes: Output name to the axis holding its items (``0`` for most; ``1`` for a
            state ``(2, batch, 128)``).
        batch_sizes: The batch size of each model call (padding not counted).
        padded_items: Filler items added for a fixed-batch model (their outputs were dropped).
        oom_retries: How many times the batch was halved after running out of memory.
    """

    batch_axes: dict[str, int]
    batch_sizes: list[int]
    padded_items: int
    oom_retries: int

    def item(self, index: int) -> Arrays:
        """Input ``index``'s outputs: each output taken at ``index`` on its batch axis."""
        axes = getattr(self, "batch_axes", {})
        return {k: np.take(v, index, axis=axes.get(k, 0)) for k, v in self.items()}


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
class RunStats:
    """How the model calls of one run went, collected while it runs.

    Attributes:
        batch_sizes: The batch size of each model call, in order (padding not counted).
        padded_items: Filler items added to reach a fixed-batch model's batch.
        oom_retries: How many times a batch was halved after running out of memory.
    """

    batch_sizes: list[int] = field(default_factory=list)
    padded_items: int = 0
    oom_retries: int = 0

    def record_call(self, size: int, fixed_batch: int | None) -> None:
        """Counts one model call on ``size`` items (padded up to ``fixed_batch`` if set)."""
        self.batch_sizes.append(size)
        if fixed_batch is not None and size < fixed_batch:
            self.padded_items += fixed_batch - size

    def copy_to(self, result: DatasetResult | BatchOutputs) -> None:
        """Sets ``result``'s batch sizes, padded items and out-of-memory retries to these."""
        result.batch_sizes = self.batch_sizes
        result.padded_items = self.padded_items
        result.oom_retries = self.oom_retries
