"""Postprocessing for classifiers: a numerically stable softmax and top-k with labels.

The public names are served from :mod:`pyinfer.engine` (and ``pyinfer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError

__all__ = ["Prediction", "softmax", "top_k", "top_k_batch"]


class Prediction(NamedTuple):
    """One class of a classifier's answer.

    Attributes:
        class_index: The class index (position in the scores).
        label: Its label when labels were given, else ``None``.
        score: Its score (a probability after softmax).
    """

    class_index: int
    label: str | None
    score: float


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Softmax along an axis, computed stably (the maximum is subtracted first).

    Args:
        logits: Scores, any shape (float; integers are converted to float64).
        axis: The class axis.

    Returns:
        Probabilities of the same shape, each slice along ``axis`` summing to 1; float32 input
        gives float32.

    Raises:
        InvalidInputError: If ``logits`` is empty along ``axis`` or holds NaN.
    """
    x = np.asarray(logits)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim == 0 or x.shape[axis] == 0:
        raise InvalidInputError(f"softmax needs at least one score along axis {axis}")
    if np.isnan(x).any():
        raise InvalidInputError("softmax got NaN scores")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= np.sum(shifted, axis=axis, keepdims=True)
    out: np.ndarray = shifted
    return out


def _check_labels(labels: Sequence[str] | None, classes: int) -> None:
    if labels is not None and len(labels) != classes:
        raise InvalidArgumentError(
            f"{len(labels)} labels given for {classes} classes; give one label per class"
        )


def top_k(
    scores: Any,
    k: int = 5,
    labels: Sequence[str] | None = None,
    *,
    apply_softmax: bool | None = False,
) -> list[Prediction]:
    """The ``k`` highest scores of one item, best first (ties: lower index first).

    Args:
        scores: 1-D scores of one item (logits or probabilities).
        k: How many; capped at the number of classes.
        labels: One label per class.
        apply_softmax: Report each chosen class's softmax probability instead of its raw
            score; ``None`` does it unless the scores already are probabilities (none
            negative, summing to 1 within 1e-3). The classes are ranked on the raw scores
            either way, so logits too close together to tell apart after a float32 softmax
            still come out in their true order.

    Returns:
        Up to ``k`` predictions.

    Raises:
        InvalidArgumentError: If ``k < 1`` or the labels do not match the classes.
        InvalidInputError: If ``scores`` is not 1-D.
    """
    s = _scores_of_rank(scores, 1, "top_k takes the 1-D scores of one item", "; use top_k_batch")
    return top_k_batch(s[None, :], k, labels, apply_softmax=apply_softmax)[0]


def top_k_batch(
    scores: Any,
    k: int = 5,
    labels: Sequence[str] | None = None,
    *,
    apply_softmax: bool | None = False,
) -> list[list[Prediction]]:
    """:func:`top_k` for each row of a ``(batch, classes)`` array.

    Raises:
        InvalidArgumentError: If ``k < 1`` or the labels do not match the classes.
        InvalidInputError: If ``scores`` is not 2-D.
    """
    s = _scores_of_rank(scores, 2, "top_k_batch takes (batch, classes) scores")
    if k < 1:
        raise InvalidArgumentError(f"k must be >= 1, got {k}")
    _check_labels(labels, s.shape[1])
    k = min(k, s.shape[1])
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    if apply_softmax is None:
        apply_softmax = not _probabilities(s)
    values = softmax(s, axis=1) if apply_softmax else s
    return [
        [Prediction(int(i), None if labels is None else str(labels[i]), float(row[i])) for i in idx]
        for row, idx in zip(values, order, strict=True)
    ]


def _scores_of_rank(scores: Any, rank: int, takes: str, hint: str = "") -> np.ndarray:
    """``scores`` as an array of ``rank`` dimensions, else an error: ``takes``, shape, ``hint``."""
    s = np.asarray(scores)
    if s.ndim != rank:
        raise InvalidInputError(f"{takes}, got shape {tuple(s.shape)}{hint}")
    return s


def _probabilities(scores: np.ndarray) -> bool:
    """Whether every row already is a probability distribution (within float32 rounding)."""
    sums = scores.sum(axis=-1, dtype=np.float64)
    return bool(scores.min() >= 0 and np.all(np.abs(sums - 1.0) < 1e-3))
