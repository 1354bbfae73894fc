"""What ``pyinfer run`` shows and writes: each item's top-k or the outputs' summaries, the failures.

Shared by a local run and a run on Ray (:mod:`~pyinfer.cli.run_ray`): both turn their results
into :class:`RunEntry` rows, printed by :func:`print_results` and written by
:func:`run_output_payload`.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import CommandError, first_and_last_line
from pyinfer.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_TOP_K",
    "MAX_FAILURES_SHOWN",
    "RunEntry",
    "check_labels",
    "print_results",
    "read_labels",
    "run_output_payload",
]

#: How long a run's list of failed items gets on stderr before it is cut.
MAX_FAILURES_SHOWN = 20


@dataclasses.dataclass
class RunEntry:
    """One item of ``pyinfer run``: where it came from, what to feed, and what came of it."""

    source: str
    kind: str  # "image", "array" (one item), "text" (one line) or "call" (one call's inputs)
    payload: Any = None
    outputs: dict[str, np.ndarray] | None = None
    error: str | None = None


#: Classes per item when ``--top-k`` is not given.
DEFAULT_TOP_K = 5


def _is_scores(value: np.ndarray) -> bool:
    return value.ndim == 1 and value.dtype.kind == "f" and value.size > 1


def _score_output(names: list[str], done: list[RunEntry], *, asked: bool) -> str | None:
    """The output to read as class scores, or ``None``: no softmax or top-k is made up.

    Scores are a float vector per item; they are read as classes only when the model has
    exactly one output, or when ``--top-k``/``--labels`` ask (then the first such output).
    Items of whole calls (``kind == "call"``) are batches, never read as scores.
    """
    items = [e for e in done if e.kind != "call" and e.outputs is not None]
    if not items or not (asked or len(names) == 1):
        return None
    first = items[0].outputs
    assert first is not None
    return next((n for n in names if _is_scores(first[n])), None)


def _summaries(names: list[str], done: list[RunEntry]) -> list[str]:
    """One line per output, named: its shape (stacked over items, or per call), dtype, range."""
    import numpy as np

    lines = []
    for name in names:
        values = [np.asarray(e.outputs[name]) for e in done if e.outputs is not None]
        if not values:
            continue
        calls = any(e.kind == "call" for e in done)
        shapes = sorted({v.shape for v in values})
        if calls or len(shapes) > 1:
            shape_text = ", ".join(str(s) for s in shapes[:3]) + (
                ", ..." if len(shapes) > 3 else ""
            )
            shape_text = f"{shape_text} (per input file)" if calls else shape_text
            flat = np.concatenate([v.reshape(-1) for v in values])
        else:
            stacked = np.stack(values)
            shape_text, flat = str(tuple(stacked.shape)), stacked.reshape(-1)
        numeric = flat.astype(np.float64) if flat.dtype.kind in "biuf" else None
        summary = (
            f"  min {numeric.min():.4g}  mean {numeric.mean():.4g}  max {numeric.max():.4g}"
            if numeric is not None and numeric.size
            else ""
        )
        lines.append(f"{name}: {shape_text} {values[0].dtype.name}{summary}")
    return lines


def _top_k(scores: np.ndarray, k: int, labels: list[str] | None) -> list[Any]:
    from pyinfer.engine import top_k

    return top_k(scores, k, labels, apply_softmax=None)


def read_labels(path: str | None) -> list[str] | None:
    """The class names of ``--labels FILE``, one per non-empty line (``None`` without one).

    Raises:
        CommandError: If the file cannot be read.
    """
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read labels file {path}: {exc.strerror or exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _short_float(value: float) -> float:
    """A float32 value as its shortest decimal (0.001, not 0.0010000000474974513)."""
    import numpy as np

    return float(str(np.float32(value)))


def _json_values(value: np.ndarray) -> Any:
    """An array as JSON-ready lists; float16/float32 values as their shortest decimals."""
    import numpy as np

    if value.dtype.kind == "f" and value.dtype.itemsize < 8:
        return np.vectorize(float, otypes=[object])(value.astype(str)).tolist()
    return value.tolist()


def run_output_payload(
    entries: list[RunEntry],
    names: list[str],
    path: Path,
    k: int,
    labels: list[str] | None,
    *,
    score: str | None = None,
    interrupted: bool = False,
) -> bytes | str:
    """The ``--output`` file's content: JSON, or ``.npy``/``.npz`` of the items that ran.

    The JSON gives the top-k of the ``score`` output (see :func:`_score_output`) and every
    other output by name; it also says how many inputs there were and whether Ctrl-C (or
    SIGTERM) stopped the run before the rest ran.
    """
    import numpy as np

    done = [e for e in entries if e.outputs is not None]
    suffix = path.suffix.lower()
    if suffix == ".json":
        items = []
        for e in entries:
            if e.outputs is None:
                continue
            item: dict[str, Any] = {"source": e.source}
            if score is not None and e.kind != "call":
                scores = e.outputs[score]
                short = scores.dtype.itemsize < 8
                item["top_k"] = [
                    {**p._asdict(), "score": _short_float(p.score) if short else p.score}
                    for p in _top_k(scores, k, labels)
                ]
            rest = {n: v for n, v in e.outputs.items() if n != score or e.kind == "call"}
            if rest:
                item["outputs"] = {n: _json_values(np.asarray(v)) for n, v in rest.items()}
            items.append(item)
        failures = [{"source": e.source, "reason": e.error} for e in entries if e.error]
        document = {
            "items": items,
            "failures": failures,
            "inputs": len(entries),
            "interrupted": interrupted,
        }
        return json.dumps(document, indent=2) + "\n"
    for name in names:
        shapes = sorted({tuple(np.shape(e.outputs[name])) for e in done if e.outputs is not None})
        if len(shapes) > 1:
            raise InvalidArgumentError(
                f"--output {path}: output '{name}' has a different shape per item "
                f"({', '.join(str(s) for s in shapes[:3])}{', ...' if len(shapes) > 3 else ''}), "
                f"which one {suffix} array cannot hold; write a .json file"
            )
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, np.stack([e.outputs[names[0]] for e in done if e.outputs is not None]))
    else:
        arrays = {n: np.stack([e.outputs[n] for e in done if e.outputs is not None]) for n in names}
        arrays.setdefault("sources", np.array([e.source for e in done]))
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def check_labels(labels: list[str] | None, path: str | None, classes: int) -> None:
    """Refuses ``--labels`` whose count is not the model's number of classes.

    Raises:
        InvalidArgumentError: The counts differ; the message names the file and both counts.
    """
    if labels is not None and len(labels) != classes:
        raise InvalidArgumentError(
            f"--labels {path}: {len(labels)} labels for a model of {classes} classes; give "
            "one label per line, one per class"
        )


def print_results(
    entries: list[RunEntry], names: list[str], args: argparse.Namespace, labels: list[str] | None
) -> tuple[str | None, list[RunEntry]]:
    """Prints each item's top-k (or each output's summary) and the failures.

    Returns:
        The output read as scores (or ``None``) and the failed entries.
    """
    done = [e for e in entries if e.outputs is not None]
    score = _score_output(names, done, asked=args.top_k is not None or bool(args.labels))
    k = args.top_k or DEFAULT_TOP_K
    out: list[str] = []
    if score is not None:
        check_labels(labels, args.labels, done[0].outputs[score].size)  # type: ignore[index]
        prefix = f"{score}: " if len(names) > 1 else ""
        for e in done:
            assert e.outputs is not None
            predictions = _top_k(e.outputs[score], k, labels)
            text = "; ".join(
                f"{p.label if p.label is not None else f'class {p.class_index}'} {p.score:.4f}"
                for p in predictions
            )
            out.append(f"{e.source}: {prefix}{text}")
    out += _summaries([n for n in names if n != score], done)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    failed = [e for e in entries if e.error is not None]
    for e in failed[:MAX_FAILURES_SHOWN]:
        sys.stderr.write(f"failed: {e.source}: {first_and_last_line(e.error or '')}\n")
    if len(failed) > MAX_FAILURES_SHOWN:
        sys.stderr.write(f"... and {len(failed) - MAX_FAILURES_SHOWN} more failed\n")
    sys.stderr.write(f"{len(done)} of {len(entries)} input(s) ran, {len(failed)} failed\n")
    return score, failed
