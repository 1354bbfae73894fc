"""Output parity: whether an exported format computes what the original computes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pyinfer.errors import InvalidArgumentError


@dataclass(frozen=True)
class _Parity:
    max_abs: float
    relative: float
    ok: bool
    output: str  # the output with the largest error (the first mismatching one, if any)
    detail: str  # on a mismatch: which output and how


def _exact(array: np.ndarray) -> bool:
    """Whether an output holds integers or booleans (compared exactly, not with a tolerance)."""
    return array.dtype.kind in "biu"


def output_parity(
    expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], tolerance: float
) -> _Parity:
    """Compares every output with the original's, by name.

    A floating-point output matches when its largest absolute difference, relative to the
    original output's largest magnitude, is within ``tolerance`` (NaN where the original has NaN
    counts as equal); an integer or boolean output (class indices, masks) must be equal.
    Outputs are matched by name when both models name them alike, else by position (named as
    the original names them).

    Raises:
        InvalidArgumentError: If the output counts or shapes differ.
    """
    if set(expected) == set(got):
        pairs = [(k, expected[k], got[k]) for k in expected]
    elif len(expected) == len(got):
        pairs = [(k, a, b) for (k, a), b in zip(expected.items(), got.values(), strict=True)]
    else:
        raise InvalidArgumentError(
            f"{len(got)} outputs ({', '.join(got)}) against the original's {len(expected)} "
            f"({', '.join(expected)})"
        )
    worst_abs = worst_rel = 0.0
    worst_name, detail = "", ""
    for name, a, b in pairs:
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            raise InvalidArgumentError(
                f"output '{name}': shape {b_arr.shape} against the original's {a_arr.shape}"
            )
        if a_arr.size == 0:
            continue
        a64, b64 = a_arr.astype(np.float64), b_arr.astype(np.float64)
        both_nan = np.isnan(a64) & np.isnan(b64)
        diffs = np.where(both_nan, 0.0, np.abs(a64 - b64))
        diffs = np.where(np.isnan(diffs), np.inf, diffs)
        diff = float(np.max(diffs))
        if _exact(a_arr):
            differing = int(np.count_nonzero(diffs))
            rel = 0.0 if differing == 0 else math.inf
            problem = f"output '{name}': {differing} of {a_arr.size} values differ" * bool(
                differing
            )
        else:
            finite = np.abs(a64[np.isfinite(a64)])
            scale = max(float(np.max(finite)) if finite.size else 0.0, 1e-12)
            rel = diff / scale
            problem = (
                f"output '{name}': relative error {rel:.1e} over the tolerance {tolerance:.0e}"
                * (not rel <= tolerance)
            )
        if problem and not detail:
            detail, worst_name = problem, name
        if not detail and (rel > worst_rel or not worst_name):
            worst_name = name
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, rel)
    return _Parity(worst_abs, worst_rel, not detail, worst_name, detail)
