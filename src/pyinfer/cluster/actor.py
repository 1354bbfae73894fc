"""One Ray Data actor of a cluster run: the model loaded once, batches through pyinfer's engine.

Ray builds :class:`DatasetPredictor` on each actor from plain arguments (the model's path and
loader options travel, never a model object), so each actor loads the model itself, once. Each
call gets a batch of task rows (:func:`pyinfer.cluster.sources.task_rows`) or of a user's Ray
Dataset rows, runs them through :meth:`~pyinfer.engine.InferenceEngine.run_dataset` with the
preprocessing a local ``pyinfer run`` chooses (its validation, its out-of-memory back-off) and
answers one row per input: its id and source, its outputs, or its failure with the reason.

Nothing here imports Ray at module level: the class is a plain callable Ray Data instantiates.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.cluster.sources import ARRAY_PREFIX
from pyinfer.engine import InferenceEngine
from pyinfer.errors import PyinferError

__all__ = ["OUTPUT_PREFIX", "ActorSettings", "DatasetPredictor", "make_pipeline"]

logger = logging.getLogger(__name__)

#: Columns of an answer row that hold one model output each (``out:NAME``).
OUTPUT_PREFIX = "out:"


@dataclass(frozen=True)
class ActorSettings:
    """What every actor is built from: plain, picklable values.

    Attributes:
        model_path: The model file or folder (every node must be able to read it).
        load_options: Options for :func:`pyinfer.load_model` (``format``, ``device``, ...).
        kind: ``"image"``, ``"text"`` or ``"array"``: the preprocessing to apply.
        batch_size: Items per model call.
        threads: The actor's CPU threads (ONNX Runtime's intra-op threads, torch's threads).
        cast_inputs: The engine's ``cast_inputs``.
        preprocessor: A picklable callable, given the loaded model, returning the preprocessor
            to use instead of the one ``kind`` chooses.
    """

    model_path: str
    load_options: dict[str, Any] = field(default_factory=dict)
    kind: str = "array"
    batch_size: int = 8
    threads: int = 1
    cast_inputs: str | None = "same_kind"
    preprocessor: Callable[[Any], Any] | None = None


def make_pipeline(model: Any, kind: str) -> Any:
    """The preprocessing a local ``pyinfer run`` applies to ``kind`` items for ``model``.

    Raises:
        InvalidArgumentError: The model takes no images (or has no tokenizer) for image (text)
            items; the message says what to give instead.
    """
    from pyinfer.preprocess import pipeline_for

    subject = {"image": "the inputs are images", "text": "the inputs are texts"}.get(kind, "")
    return pipeline_for(model, kind, subject) if subject else None


def _load(settings: ActorSettings) -> Any:
    """The model, loaded with ``settings.threads`` CPU threads unless its options say others."""
    from pyinfer.formats import ModelFormat
    from pyinfer.loading import detect_format, load_model

    options = dict(settings.load_options)
    fmt = options.get("format") or detect_format(settings.model_path).value
    if fmt == ModelFormat.ONNX.value:
        options.setdefault("intra_op_threads", settings.threads)
    model = load_model(settings.model_path, **options)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(settings.threads)
    return model


class DatasetPredictor:
    """The callable class Ray Data runs on each actor of a cluster run.

    Args:
        settings: The model, its loader options and how to run it.
    """

    def __init__(self, settings: ActorSettings) -> None:
        self.settings = settings
        model = _load(settings)
        pipeline = (
            settings.preprocessor(model)
            if settings.preprocessor is not None
            else make_pipeline(model, settings.kind)
        )
        self.engine = InferenceEngine(
            model,
            pipeline,
            batch_size=settings.batch_size,
            progress=False,
            num_workers=max(1, settings.threads),
            cast_inputs=settings.cast_inputs,  # type: ignore[arg-type]
        )
        self.actor, self.node = _where()
        self.shapes: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One answer row per input of ``batch`` (task rows or a user's item rows)."""
        began = time.perf_counter()
        ids, sources, raw = _unpack(batch, self.settings.kind)
        if self.settings.kind == "image":
            raw = [Path(p) for p in raw]  # a path, as a local run gives it (str is image data)
        outputs: list[dict[str, np.ndarray] | None] = [None] * len(ids)
        errors = [""] * len(ids)
        try:
            result = self.engine.run_dataset(raw)
        except PyinferError as exc:  # the model failed on a batch: its items fail, with why
            errors = [f"{type(exc).__name__}: {exc}"] * len(ids)
        else:
            outputs = list(result.outputs)
            for failure in result.failures:
                errors[failure.index] = failure.reason
        for out in outputs:
            if out is not None and not self.shapes:
                self.shapes = {k: (v.shape, v.dtype) for k, v in out.items()}
        busy = time.perf_counter() - began
        answer: dict[str, np.ndarray] = {
            "id": np.asarray(ids, dtype=np.int64),
            "source": np.asarray(sources, dtype=object),
            "error": np.asarray(errors, dtype=object),
            "actor": np.full(len(ids), self.actor, dtype=object),
            "node": np.full(len(ids), self.node, dtype=object),
            "busy_s": np.full(len(ids), busy / max(1, len(ids))),
        }
        for name, (shape, dtype) in self.shapes.items():
            fill = math.nan if dtype.kind in "fc" else 0
            answer[OUTPUT_PREFIX + name] = np.stack(
                [np.full(shape, fill, dtype=dtype) if out is None else out[name] for out in outputs]
            )
        return answer


def _where() -> tuple[str, str]:
    """This actor's id and its node's id (both empty outside Ray)."""
    try:
        import ray

        context = ray.get_runtime_context()
        return str(context.get_actor_id() or ""), str(context.get_node_id() or "")
    except Exception:  # outside a Ray worker: a plain call, as in a unit test
        return "", ""


def _unpack(batch: dict[str, np.ndarray], kind: str) -> tuple[list[int], list[str], Any]:
    """``(ids, sources, raw items)`` of a batch of task rows or of a user's item rows."""
    if "start" in batch:
        ids: list[int] = []
        sources: list[str] = []
        payload: list[str] = []
        arrays: dict[str, list[np.ndarray]] = {}
        for row, start in enumerate(batch["start"]):
            row_sources = [str(s) for s in batch["sources"][row]]
            ids += range(int(start), int(start) + len(row_sources))
            sources += row_sources
            payload += [str(p) for p in batch["payload"][row]]
            for column, values in batch.items():
                if column.startswith(ARRAY_PREFIX):
                    arrays.setdefault(column[len(ARRAY_PREFIX) :], []).append(values[row])
        if kind != "array":
            return ids, sources, payload
        stacked = {name: np.concatenate(parts) for name, parts in arrays.items()}
        if set(stacked) == {""}:
            return ids, sources, stacked[""]
        return ids, sources, stacked
    ids = [int(i) for i in batch["id"]]
    sources = [str(s) for s in batch["source"]] if "source" in batch else [f"item {i}" for i in ids]
    if kind == "image":
        return ids, sources, [str(p) for p in batch["path"]]
    if kind == "text":
        return ids, sources, [str(t) for t in batch["text"]]
    inputs = {k: v for k, v in batch.items() if k not in {"id", "source"}}
    return ids, sources, inputs
