"""Output shards of a cluster run: written as the batches arrive, read back in input order.

Each block of answer rows becomes one shard in the output folder: ``part-00000.parquet`` (one
row per input: ``id``, ``source``, ``error`` (null where it ran), ``actor``, ``node`` and one
column per output, ``out:NAME``, a list of the item's values flattened, with its shape and
dtype in the schema's metadata) or ``part-00000.npz`` (the same columns as arrays, the outputs
with their shapes). :func:`read_outputs` gathers a folder of shards back into a
:class:`~pyinfer.engine.DatasetResult` in input order.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.cluster.actor import OUTPUT_PREFIX
from pyinfer.engine import DatasetResult, ItemFailure
from pyinfer.errors import InvalidArgumentError
from pyinfer.report.files import write_atomic

__all__ = ["SHARD_FORMATS", "in_order", "read_outputs", "write_shard"]

#: The shard formats, by file suffix.
SHARD_FORMATS = ("parquet", "npz")
#: Schema metadata key of an output column's shape and dtype (JSON).
_SHAPE_KEY = b"pyinfer.outputs"
_TEXT_COLUMNS = ("source", "error", "actor", "node")


def write_shard(folder: Path, number: int, block: dict[str, np.ndarray], fmt: str) -> Path:
    """Writes one block of answer rows as shard ``number`` of ``folder``; returns its path."""
    path = folder / f"part-{number:05d}.{fmt}"
    columns = {
        k: v
        for k, v in block.items()
        if k == "id" or k in _TEXT_COLUMNS or k.startswith(OUTPUT_PREFIX)
    }
    if fmt == "npz":
        buffer = io.BytesIO()
        arrays = {k: v.astype(str) if k in _TEXT_COLUMNS else v for k, v in columns.items()}
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return write_atomic(path, buffer.getvalue())
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, Any] = {}
    shapes: dict[str, Any] = {}
    for key, value in columns.items():
        if key == "id":
            data[key] = pa.array(value, type=pa.int64())
        elif key == "error":
            data[key] = pa.array([str(e) or None for e in value], type=pa.string())
        elif key in _TEXT_COLUMNS:
            data[key] = pa.array([str(s) for s in value], type=pa.string())
        else:
            flat = np.ascontiguousarray(value).reshape(len(value), -1)
            size = flat.shape[1]
            offsets = np.arange(0, (len(flat) + 1) * size, size, dtype=np.int32)
            data[key] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))
            shapes[key] = {"shape": list(value.shape[1:]), "dtype": value.dtype.str}
    table = pa.table(data).replace_schema_metadata({_SHAPE_KEY: json.dumps(shapes).encode()})
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    return write_atomic(path, buffer.getvalue().to_pybytes())


def _read_shard(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as loaded:
            return {k: loaded[k] for k in loaded.files}
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    shapes = json.loads((table.schema.metadata or {}).get(_SHAPE_KEY, b"{}"))
    out: dict[str, np.ndarray] = {}
    for key in table.column_names:
        column = table.column(key).combine_chunks()
        if key in shapes:
            shape, dtype = shapes[key]["shape"], np.dtype(shapes[key]["dtype"])
            values = column.flatten().to_numpy(zero_copy_only=False)
            out[key] = values.astype(dtype, copy=False).reshape(len(column), *shape)
        elif key == "error":
            out[key] = np.array(["" if e is None else e for e in column.to_pylist()])
        else:
            out[key] = column.to_numpy(zero_copy_only=False)
    return out


def read_outputs(folder: str | Path) -> DatasetResult:
    """Every shard of ``folder`` as one result in input order (by id).

    Raises:
        InvalidArgumentError: The folder holds no shard, or a shard cannot be read (the message
            names it).
    """
    where = Path(folder)
    paths = sorted(p for fmt in SHARD_FORMATS for p in where.glob(f"part-*.{fmt}"))
    if not paths:
        raise InvalidArgumentError(f"{where} holds no output shards (part-*.parquet, part-*.npz)")
    rows: dict[int, tuple[str, str, dict[str, np.ndarray] | None]] = {}
    for path in paths:
        try:
            shard = _read_shard(path)
        except Exception as exc:  # pyarrow's and numpy's read errors are many
            raise InvalidArgumentError(
                f"cannot read output shard {path}: {type(exc).__name__}: {exc}"
            ) from exc
        names = [k for k in shard if k.startswith(OUTPUT_PREFIX)]
        for row, item in enumerate(shard["id"]):
            error = str(shard["error"][row])
            outputs = None if error else {n[len(OUTPUT_PREFIX) :]: shard[n][row] for n in names}
            rows[int(item)] = (str(shard["source"][row]), error, outputs)
    return in_order(rows)


def in_order(rows: dict[int, tuple[str, str, dict[str, np.ndarray] | None]]) -> DatasetResult:
    """A result in id order from ``id -> (source, error or "", outputs or None)``.

    Raises:
        InvalidArgumentError: Ids are missing (the run did not finish, or shards were lost).
    """
    result = DatasetResult()
    missing = len(rows) and max(rows) + 1 - len(rows)
    if missing:
        raise InvalidArgumentError(
            f"{missing} input id(s) have no output row: the run stopped early or shards are missing"
        )
    for index in range(len(rows)):
        source, error, outputs = rows[index]
        result.outputs.append(outputs)
        result.sources.append(source)
        if error:
            result.failures.append(ItemFailure(index, source, error))
    return result
