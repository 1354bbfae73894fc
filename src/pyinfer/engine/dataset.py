"""Listing a dataset: a folder of images, arrays or any iterable, as numbered items in chunks.

:func:`list_source` turns what :meth:`~pyinfer.engine.InferenceEngine.run_dataset` is given into
``(index, source, raw item)`` triples and their count when known; :func:`read_chunks` cuts
them into the batches the engine prepares and runs.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.errors import InvalidArgumentError
from pyinfer.preprocess import IMAGE_EXTENSIONS

__all__ = ["Chunk", "Item", "SourceItems", "list_source", "read_chunks"]

logger = logging.getLogger(__name__)

#: One item of a dataset: its index, what it is (a file path or ``"item N"``) and the raw item.
Item = tuple[int, str, Any]
#: The items of one batch, in order.
Chunk = list[Item]


class SourceItems(Iterator[Item]):
    """Numbers the items of a user's iterable; an exception it raises ends the items instead.

    The error is kept in :attr:`error` and raised once the batches already read have run, so a
    generator that fails part way loses none of the work done before it.
    """

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source
        self._index = 0
        self.error: Exception | None = None

    def __next__(self) -> Item:
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


def list_source(source: Any, *, has_preprocessor: bool) -> tuple[Iterator[Item], int | None]:
    """The numbered items of a dataset, and how many there are (``None``: unknown).

    Args:
        source: A folder of images (sorted by name, extensions :data:`IMAGE_EXTENSIONS`), a
            numpy array (the first axis is the items), a dict of name to such arrays, or any
            iterable of items.
        has_preprocessor: Whether the engine has a preprocessor (a folder needs one).

    Returns:
        The ``(index, source, raw item)`` triples and their count.

    Raises:
        InvalidArgumentError: If the source is not a dataset (a missing folder, a file, bytes,
            a dict of scalars), or a folder is given without a preprocessor.
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise InvalidArgumentError(
                f"dataset {folder} is not a folder; give a folder of images, an array or an "
                "iterable of inputs"
            )
        if not has_preprocessor:
            raise InvalidArgumentError(
                f"a folder of images ({folder}) needs a preprocessor, such as "
                "ImagePipeline.for_model(model)"
            )
        entries = list(folder.iterdir())
        files = sorted(p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
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
                f"dataset arrays have different lengths: { {k: len(v) for k, v in arrays.items()} }"
            )
        n = lengths.pop()
        gen = ((i, f"item {i}", {k: v[i] for k, v in arrays.items()}) for i in range(n))
        return gen, n
    if isinstance(source, Iterable):
        total = len(source) if isinstance(source, Sized) else None
        return SourceItems(iter(source)), total
    raise InvalidArgumentError(
        f"cannot run a dataset from a {type(source).__name__}: give a folder, an array or an "
        "iterable of inputs"
    )


def read_chunks(items: Iterator[Item], size: int) -> Iterator[Chunk]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are asked for."""
    return iter(lambda: list(itertools.islice(items, size)), [])
