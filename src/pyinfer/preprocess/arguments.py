"""Checks of the arguments that build preprocessing steps: each returns the clean value or raises.

Every check raises :class:`~pyinfer.errors.InvalidArgumentError` with a message naming the
argument and showing (a shortened repr of) what was given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyinfer.errors import InvalidArgumentError

__all__ = [
    "as_dtype",
    "choice",
    "finite_number",
    "flag",
    "shown",
    "size_pair",
    "whole_number",
]


def shown(value: Any) -> str:
    """``repr(value)`` cut to a length a message can hold."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def whole_number(value: Any, what: str, *, least: int = 1) -> int:
    """``value`` as an ``int`` of at least ``least`` (an integral float too), else an error."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{what} must be an integer >= {least}, got {shown(value)}")
    if value < least:
        raise InvalidArgumentError(f"{what} must be >= {least}, got {value}")
    return int(value)


def size_pair(size: Any, what: str) -> tuple[int, int]:
    """``(height, width)`` from an int (a square) or a pair of ints, else an error."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise InvalidArgumentError(
                f"{what} must be an int or (height, width), got {shown(size)}"
            )
        return whole_number(size[0], what), whole_number(size[1], what)
    side = whole_number(size, what)
    return side, side


def flag(value: Any, what: str) -> bool:
    """``value`` if it is a bool, else an error (an array or a string is no switch)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{what} must be True or False, got {shown(value)}")
    return bool(value)


def choice(value: Any, choices: Sequence[str], what: str) -> Any:
    """``value`` if it is one of the strings ``choices``, else an error listing them."""
    if not (isinstance(value, str) and value in choices):
        names = " or ".join(repr(c) for c in choices)
        raise InvalidArgumentError(f"{what} must be {names}, not {shown(value)}")
    return value


def as_dtype(value: Any, what: str) -> np.dtype[Any]:
    """``np.dtype(value)``, with ``None``, a structured dtype or a non-dtype as an error."""
    try:
        dtype: np.dtype[Any] | None = np.dtype(value) if value is not None else None
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} is no numpy dtype: {shown(value)} ({exc})") from exc
    if dtype is None or dtype.kind == "V":
        raise InvalidArgumentError(f"{what} is no numpy dtype of values: {shown(value)}")
    return dtype


def finite_number(value: Any, what: str) -> float:
    """``value`` as a finite ``float``, else an error."""
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentError(f"{what} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"{what} must be a number, got {shown(value)}") from exc
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{what} must be finite, got {number}")
    return number
