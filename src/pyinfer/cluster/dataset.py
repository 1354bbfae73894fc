"""Dataset inference on Ray Data: a pool of actors, each running pyinfer's engine on batches.

:func:`run_dataset` lists the inputs on the driver (each gets an id: its position), cuts them
into tasks of whole batches, and hands them to Ray Data's ``map_batches`` over a pool of actors
(:class:`~pyinfer.cluster.actor.DatasetPredictor`): each loads the model from its path once
and runs its batches through :class:`~pyinfer.engine.InferenceEngine`, with the preprocessing
a local ``pyinfer run`` applies. The answers come back to the driver as they finish: kept in
memory (and put back in input order) or written as shards to an output folder
(:mod:`~pyinfer.cluster.shards`), with a :class:`~pyinfer.cluster.throughput.DatasetRunReport`
of items per second overall and per actor.

Resources: by default there is one actor per GPU of the cluster (one GPU each), or, without
GPUs, one per CPU; the actors share 90% of the cluster's CPUs, so Ray Data keeps room for its
own tasks (with every CPU taken by actors a 2-CPU cluster waits forever).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from pyinfer import errors
from pyinfer.cluster.actor import OUTPUT_PREFIX, ActorSettings, DatasetPredictor
from pyinfer.cluster.runtime import ClusterInfo, check_reachable, connect, require_ray
from pyinfer.cluster.shards import SHARD_FORMATS, in_order, read_outputs, write_shard
from pyinfer.cluster.sources import list_items, task_rows
from pyinfer.cluster.throughput import ActorThroughput, DatasetRunReport
from pyinfer.engine import DatasetResult, ItemFailure
from pyinfer.engine.pipeline import progress_bar
from pyinfer.errors import ClusterError, InvalidArgumentError, PyinferError
from pyinfer.report.files import write_atomic

__all__ = ["CPU_SHARE", "ClusterRunResult", "plan_actors", "run_dataset"]

logger = logging.getLogger(__name__)

#: The share of the cluster's CPUs the default actors ask for; the rest stays free for Ray
#: Data's own tasks (reading, splitting), which otherwise wait forever behind the actors.
CPU_SHARE = 0.9
#: Batches of ``batch_size`` in one task of an actor: the engine prepares the next batch of a
#: task while the model runs the current one.
BATCHES_PER_TASK = 4
_WHAT = "pyinfer.cluster.run_dataset"


@dataclass(frozen=True)
class ClusterRunResult:
    """What :func:`run_dataset` gives back.

    Attributes:
        report: Throughput overall and per actor, failures, the shards written.
        dataset: The outputs in input order (``None`` when they were written to shards: read
            them with :meth:`in_order`).
    """

    report: DatasetRunReport
    dataset: DatasetResult | None = None

    def in_order(self) -> DatasetResult:
        """Every input's outputs (or failure) in input order, read back from shards if needed."""
        if self.dataset is not None:
            return self.dataset
        assert self.report.output is not None
        return read_outputs(self.report.output)

    @property
    def items_per_s(self) -> float:
        """Inputs that ran per second of wall time, over all actors."""
        return self.report.items_per_s


def plan_actors(
    cluster: ClusterInfo,
    actors: int | None,
    cpus_per_actor: float | None,
    gpus_per_actor: float | None,
) -> tuple[int, float, float]:
    """``(actors, cpus_per_actor, gpus_per_actor)``: the given values, the rest filling the cluster.

    Raises:
        InvalidArgumentError: A value out of its domain, or a pool larger than the cluster.
    """
    if actors is not None and actors < 1:
        raise InvalidArgumentError(f"actors must be at least 1, got {actors}")
    if cpus_per_actor is not None and not cpus_per_actor > 0:
        raise InvalidArgumentError(f"cpus_per_actor must be above 0, got {cpus_per_actor}")
    if gpus_per_actor is not None and not gpus_per_actor >= 0:
        raise InvalidArgumentError(f"gpus_per_actor must be 0 or more, got {gpus_per_actor}")
    gpus = gpus_per_actor if gpus_per_actor is not None else (1.0 if cluster.gpus >= 1 else 0.0)
    if actors is None:
        actors = int(cluster.gpus // gpus) if gpus > 0 else int(cluster.cpus)
        actors = max(1, actors)
    cpus = cpus_per_actor
    if cpus is None:
        cpus = math.floor(cluster.cpus * CPU_SHARE / actors * 100) / 100
        if cpus <= 0:
            raise InvalidArgumentError(
                f"{actors} actors on a cluster of {cluster.cpus:g} CPUs leave none per actor; "
                "ask for fewer actors"
            )
    wanted = (actors * cpus, actors * gpus)
    if wanted[0] > cluster.cpus + 1e-9 or wanted[1] > cluster.gpus + 1e-9:
        raise InvalidArgumentError(
            f"{actors} actors of {cpus:g} CPU and {gpus:g} GPU ask for {wanted[0]:g} CPUs and "
            f"{wanted[1]:g} GPUs; the cluster ({cluster.address}) has {cluster.cpus:g} and "
            f"{cluster.gpus:g}: ask for fewer actors or fewer resources each"
        )
    return actors, cpus, gpus


def run_dataset(
    model_path: str | Path,
    dataset: Any,
    *,
    load_options: dict[str, Any] | None = None,
    text_column: str | None = None,
    preprocessor: Callable[[Any], Any] | None = None,
    cast_inputs: str | None = "same_kind",
    batch_size: int = 8,
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float | None = None,
    output: str | Path | None = None,
    output_format: str = "parquet",
    address: str | None = None,
    progress: bool | None = None,
    progress_file: IO[str] | None = None,
) -> ClusterRunResult:
    """Runs a model on every input of a dataset on a Ray cluster, with a pool of actors.

    Args:
        model_path: The model file or folder; every node of the cluster must be able to read
            it at this path (it travels as a path, each actor loads it once).
        dataset: A path or a list of paths (a folder or files of images, ``.npy``/``.npz``
            arrays with the items on the first axis, ``.txt`` files of one text per line,
            Parquet files with a text column), or a Ray Dataset with an integer ``id`` column
            and ``path`` (image files), ``text`` or the model's input names as columns (and an
            optional ``source``).
        load_options: Options for :func:`pyinfer.load_model` on the actors (``format``,
            ``device``, ``intra_op_threads``...); ONNX Runtime's intra-op threads default to
            the actor's CPUs.
        text_column: The Parquet column of texts (``"text"``).
        preprocessor: A picklable callable given the loaded model, returning the preprocessor
            (default: the image preset for images, the model's tokenizer for texts, none for
            arrays, as a local ``pyinfer run`` chooses).
        cast_inputs: The engine's ``cast_inputs`` (``None``: a dtype mismatch is an error).
        batch_size: Items per model call.
        actors: Actors of the pool (default: one per GPU, else one per CPU of the cluster).
        cpus_per_actor: CPUs each actor asks for (default: 90% of the cluster's, shared).
        gpus_per_actor: GPUs each actor asks for (default: 1 on a cluster with GPUs, else 0).
        output: A folder to write the outputs to as shards (created; it must hold no shards
            yet), with ``report.json``; ``None`` keeps them in memory.
        output_format: ``"parquet"`` or ``"npz"`` shards.
        address: ``None`` starts a local cluster (unless this process has started Ray);
            ``"auto"``, ``"host:port"`` or ``"ray://host:port"`` attaches to that cluster.
        progress: The engine's progress bar, on the driver (``None``: on a terminal).
        progress_file: Where the bar is drawn (standard error).

    Returns:
        The report (throughput overall and per actor, failures) and the outputs in input order.

    Raises:
        FrameworkNotInstalledError: Ray is not installed (the message names the extra).
        ModelNotFoundError: The model path does not exist here.
        InvalidArgumentError: A bad argument or input (a missing path, an unreadable file, a
            Parquet file without the column, a pool larger than the cluster), or the model
            does not fit the inputs (an actor's message).
        ClusterError: The cluster could not be started or reached (its address and Ray's cause
            in the message), or the run failed on it.
    """
    from pyinfer.loading import detect_format

    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    if output_format not in SHARD_FORMATS:
        raise InvalidArgumentError(
            f"output_format must be {' or '.join(map(repr, SHARD_FORMATS))}, not {output_format!r}"
        )
    detect_format(model_path)  # a missing or unknown model fails here, not on every actor
    folder = _output_folder(output)
    given = hasattr(dataset, "map_batches")  # a Ray Dataset
    items = None if given else list_items(dataset, text_column=text_column)
    require_ray(_WHAT)
    check_reachable(address, what=_WHAT)
    with connect(address, what=_WHAT) as cluster, _quiet_ray_data():
        import ray.data

        count, cpus, gpus = plan_actors(cluster, actors, cpus_per_actor, gpus_per_actor)
        kind = items.kind if items is not None else _kind_of_columns(dataset.columns())
        settings = ActorSettings(
            model_path=str(model_path),
            load_options=dict(load_options or {}),
            kind=kind,
            batch_size=batch_size,
            threads=max(1, round(cpus)),
            cast_inputs=cast_inputs,
            preprocessor=preprocessor,
        )
        if items is not None:
            batches = -(-len(items) // batch_size)
            # Enough tasks for every actor; an actor that would get none is not started.
            per_task = max(1, min(BATCHES_PER_TASK, batches // count))
            rows = task_rows(items, batch_size, per_task)
            if len(rows) < count:
                logger.info("%d task(s) of %d batch(es): %d actor(s)", len(rows), per_task, count)
                count = len(rows)
            source = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        else:
            source = dataset
        mapped = source.map_batches(
            DatasetPredictor,
            fn_constructor_kwargs={"settings": settings},
            batch_size=1 if items is not None else batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=count),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        began = time.perf_counter()
        total = len(items) if items is not None else None
        bar = progress_bar(progress, progress_file, total, batch_size, Path(model_path).name)
        try:
            gathered = _gather(mapped.iter_batches(batch_size=None), folder, output_format, bar)
        except PyinferError:
            raise
        except Exception as exc:
            raise _failure(exc, cluster.address) from exc
        finally:
            if bar is not None:
                bar.close()
        report = _report(
            gathered,
            time.perf_counter() - began,
            folder,
            model_path=model_path,
            address=cluster.address,
            batch_size=batch_size,
            plan=(count, cpus, gpus),
        )
    if folder is not None:
        write_atomic(folder / "report.json", report.to_json() + "\n")
        return ClusterRunResult(report)
    result = in_order(gathered.rows)
    result.elapsed_s = report.elapsed_s
    return ClusterRunResult(report, result)


@dataclass
class _Gathered:
    """The answers of a run as they arrived: rows (kept in memory) or shards, and stats."""

    rows: dict[int, tuple[str, str, dict[str, np.ndarray] | None]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    #: (actor, node) -> [items, failed, busy seconds]
    per_actor: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)
    items: int = 0


def _gather(blocks: Iterable[Any], folder: Path | None, fmt: str, bar: Any) -> _Gathered:
    gathered = _Gathered()
    for block in blocks:
        ids = block["id"]
        names = [k for k in block if k.startswith(OUTPUT_PREFIX)]
        for row, item in enumerate(ids):
            error = str(block["error"][row])
            source = str(block["source"][row])
            stats = gathered.per_actor.setdefault(
                (str(block["actor"][row]), str(block["node"][row])), [0, 0, 0.0]
            )
            stats[0] += 1
            stats[1] += 1 if error else 0
            stats[2] += float(block["busy_s"][row])
            if error:
                gathered.failures.append(ItemFailure(int(item), source, error))
            if folder is None:
                outputs = None if error else {n[len(OUTPUT_PREFIX) :]: block[n][row] for n in names}
                gathered.rows[int(item)] = (source, error, outputs)
        if folder is not None:
            gathered.shards.append(str(write_shard(folder, len(gathered.shards), block, fmt)))
        gathered.items += len(ids)
        if bar is not None:
            bar.update(len(ids))
    return gathered


def _report(
    gathered: _Gathered,
    elapsed: float,
    folder: Path | None,
    *,
    model_path: str | Path,
    address: str,
    batch_size: int,
    plan: tuple[int, float, float],
) -> DatasetRunReport:
    failures = sorted(gathered.failures, key=lambda f: f.index)
    succeeded = gathered.items - len(failures)
    per_second = (lambda n: n / elapsed) if elapsed > 0 else (lambda n: math.nan)
    actors = tuple(
        ActorThroughput(
            actor=actor,
            node=node,
            items=int(items),
            failed=int(failed),
            busy_s=busy,
            items_per_s=per_second(items),
        )
        for (actor, node), (items, failed, busy) in sorted(gathered.per_actor.items())
    )
    return DatasetRunReport(
        model=str(model_path),
        address=address,
        items=gathered.items,
        succeeded=succeeded,
        batch_size=batch_size,
        actors=plan[0],
        cpus_per_actor=plan[1],
        gpus_per_actor=plan[2],
        elapsed_s=elapsed,
        items_per_s=per_second(succeeded),
        per_actor=actors,
        failures=tuple(failures),
        output=None if folder is None else str(folder),
        shards=tuple(gathered.shards),
    )


def _output_folder(output: str | Path | None) -> Path | None:
    if output is None:
        return None
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"output {folder} is a file; give a folder for the shards")
    if folder.is_dir() and any(folder.glob("part-*")):
        raise InvalidArgumentError(
            f"output folder {folder} already holds shards (part-*); give an empty or new folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _kind_of_columns(columns: Sequence[str]) -> str:
    """The kind of a user's Ray Dataset, from its columns."""
    if "id" not in columns:
        raise InvalidArgumentError(
            f"the Ray Dataset has no 'id' column (its columns: {', '.join(columns)}); give each "
            "row an integer id (its position), so the outputs can be put back in order"
        )
    if "path" in columns:
        return "image"
    if "text" in columns:
        return "text"
    return "array"  # one column per model input


#: How Ray's errors quote an exception an actor raised (an actor that died keeps only its text).
_QUOTED = re.compile(r"pyinfer\.errors\.(\w+): (.*)")


def _failure(exc: Exception, address: str) -> PyinferError:
    """The pyinfer error an actor raised (Ray wraps or quotes it), else a ClusterError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PyinferError):
            return type(seen)(str(seen))
        seen = seen.__cause__ or seen.__context__
    quoted = _QUOTED.findall(str(exc))
    if quoted:
        name, message = quoted[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, PyinferError):
            return kind(message.strip())
    last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    return ClusterError(
        f"{_WHAT}: the run failed on the Ray cluster ({address}): {type(exc).__name__}: {last}"
    )


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's own progress bars and start-up lines off for the run (pyinfer shows its own)."""
    import ray.data

    with warnings.catch_warnings():
        # Ray 2.60's DataContext warns of its own deprecated fields when first made.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    ray_logger = logging.getLogger("ray.data")
    level = ray_logger.level
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    ray_logger.setLevel(logging.ERROR)  # "progress bars disabled": we show our own
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        ray_logger.setLevel(level)
