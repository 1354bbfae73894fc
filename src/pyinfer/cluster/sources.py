"""What a cluster run is given, as numbered items cut into tasks: the driver's side of the work.

:func:`list_items` turns a path (a folder or list of images, ``.npy``/``.npz`` arrays, a ``.txt``
file of lines, a Parquet file with a text column) into :class:`Items`: every input gets an id
(its position) and a source (its file path, ``FILE:LINE`` or ``FILE[i]``), and its kind decides
the preprocessing the actors apply (the image preset, the model's tokenizer, none for arrays),
as the local ``pyinfer run`` decides it. :func:`task_rows` cuts the items into rows of whole
batches, so each actor call runs batches of exactly the items a local run batches together
(the same outputs, bit for bit, even where a batch is padded to its longest text).

Images travel as paths (each actor decodes its own files: the nodes must see the same files),
texts as strings and arrays as slices of the loaded arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.errors import InvalidArgumentError
from pyinfer.preprocess import IMAGE_EXTENSIONS

__all__ = ["ARRAY_PREFIX", "KINDS", "Items", "list_items", "task_rows"]

logger = logging.getLogger(__name__)

#: The kinds of items, each with its preprocessing on the actors.
KINDS = ("image", "text", "array")
#: Columns of a task row that hold one model input each (``arr:NAME``).
ARRAY_PREFIX = "arr:"
#: The Parquet column read as texts when none is named.
DEFAULT_TEXT_COLUMN = "text"


@dataclass
class Items:
    """The inputs of a cluster run, in input order.

    Attributes:
        kind: ``"image"`` (``payload`` holds file paths), ``"text"`` (strings) or ``"array"``
            (``arrays`` holds the inputs, items on the first axis).
        sources: Per input, where it came from.
        payload: Per input, the path or text (empty for arrays).
        arrays: Input name to array (``""`` for an ``.npy``: the model's one input).
    """

    kind: str
    sources: list[str] = field(default_factory=list)
    payload: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sources)


def _images_of(folder: Path) -> list[Path]:
    """The image files in a folder and its sub-folders, sorted, hidden ones left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".npy", ".npz"}:
        return "array"
    if suffix in {".txt", ".parquet"}:
        return "text"
    return "image"


def list_items(data: str | Path | Sequence[str | Path], *, text_column: str | None) -> Items:
    """The numbered inputs of a path or a list of paths, all of one kind.

    Args:
        data: A folder of images (read with its sub-folders, sorted by path), image files,
            ``.npy``/``.npz`` files (the first axis of each array is the items; an ``.npz``'s
            keys are the model's input names), ``.txt`` files (one item per non-empty line) or
            Parquet files (one item per row of ``text_column``).
        text_column: The Parquet column of texts (``"text"`` by default).

    Returns:
        The items, with their sources, in input order.

    Raises:
        InvalidArgumentError: A path does not exist, a folder holds no images, the paths mix
            kinds, or a file cannot be read (the message names it and the reader's cause).
    """
    paths = [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
    if not paths:
        raise InvalidArgumentError("no input given: give a folder, files or a Ray Dataset")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = _images_of(path)
            if not images:
                raise InvalidArgumentError(
                    f"input folder {path} holds no image files "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))}), in it or its sub-folders"
                )
            files += images
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidArgumentError(f"input {path} does not exist")
    kinds = {_kind_of(p) for p in files}
    if len(kinds) > 1:
        raise InvalidArgumentError(
            f"the inputs mix {' and '.join(sorted(kinds))} files; a cluster run takes one kind"
        )
    items = Items(kinds.pop())
    for path in files:
        if items.kind == "image":
            items.sources.append(str(path))
            items.payload.append(str(path))
        elif path.suffix.lower() == ".parquet":
            _add_parquet(items, path, text_column or DEFAULT_TEXT_COLUMN)
        elif items.kind == "text":
            _add_lines(items, path)
        else:
            _add_arrays(items, path)
    logger.info("%d %s input(s) from %s", len(items), items.kind, ", ".join(map(str, paths)))
    return items


def _add_lines(items: Items, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read text file {path}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            items.sources.append(f"{path}:{number}")
            items.payload.append(line.strip())


def _add_parquet(items: Items, path: Path, column: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        if column not in names:
            raise InvalidArgumentError(
                f"Parquet file {path} has no column {column!r} (its columns: "
                f"{', '.join(names) or 'none'}); name the text column with text_column="
            )
        values = pq.read_table(path, columns=[column]).column(column)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidArgumentError(
            f"cannot read Parquet file {path}: {type(exc).__name__}: {exc}"
        ) from exc
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise InvalidArgumentError(
            f"column {column!r} of Parquet file {path} holds {values.type}, not text"
        )
    for row, value in enumerate(values.to_pylist()):
        items.sources.append(f"{path}[{row}]")
        items.payload.append(value if value is not None else "")


def _add_arrays(items: Items, path: Path) -> None:
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"": loaded}
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidArgumentError(f"cannot read {path.suffix} file {path}: {exc}") from exc
    if items.arrays and set(arrays) != set(items.arrays):
        raise InvalidArgumentError(
            f"{path} holds {', '.join(sorted(arrays)) or 'no array'}, the first file "
            f"{', '.join(sorted(items.arrays))}: every file must hold the same inputs"
        )
    counts = {len(v) if v.ndim else 0 for v in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise InvalidArgumentError(
            f"{path}: every array needs the items on its first axis, in the same number "
            f"(lengths: {', '.join(f'{k or path.name}={v.shape}' for k, v in arrays.items())})"
        )
    count = counts.pop()
    items.sources += [f"{path}[{i}]" for i in range(count)]
    items.payload += [""] * count
    for key, value in arrays.items():
        items.arrays[key] = (
            np.concatenate([items.arrays[key], value]) if key in items.arrays else value
        )


def task_rows(items: Items, batch_size: int, batches_per_task: int) -> list[dict[str, Any]]:
    """The items cut into rows of ``batches_per_task`` batches of ``batch_size``, in order.

    Each row holds ``start`` (the id of its first item), its ``sources``, the ``payload`` of
    images and texts and, for arrays, one ``arr:NAME`` column per input with the row's slice.
    """
    per_task = batch_size * batches_per_task
    rows = []
    for start in range(0, len(items), per_task):
        stop = min(start + per_task, len(items))
        row: dict[str, Any] = {
            "start": start,
            "sources": items.sources[start:stop],
            "payload": items.payload[start:stop],
        }
        for name, value in items.arrays.items():
            row[ARRAY_PREFIX + name] = value[start:stop]
        rows.append(row)
    return rows
