"""The example extension times its C++ work with pyinfer's timed loop, and keeps the work."""

from __future__ import annotations

import math
import re

import pytest

import pyinfer_cpp_example as example


def test_the_work_is_computed() -> None:
    assert example.sum_of_square_roots(2.0, 3) == pytest.approx(
        math.sqrt(2) + math.sqrt(3) + math.sqrt(4), rel=1e-15
    )
    assert example.sum_of_square_roots(2.0, 0) == 0.0


def test_the_summary_describes_every_timed_call() -> None:
    s = example.time_sum_of_square_roots(2.0, 1000, iterations=200)
    assert set(s) == {
        "count",
        "mean_ns",
        "std_ns",
        "min_ns",
        "max_ns",
        "p50_ns",
        "p99_ns",
        "result",
    }
    assert s["count"] == 200
    assert 0.0 < s["min_ns"] <= s["p50_ns"] <= s["p99_ns"] <= s["max_ns"]
    assert s["min_ns"] <= s["mean_ns"] <= s["max_ns"]
    assert s["std_ns"] >= 0.0
    assert s["result"] == pytest.approx(example.sum_of_square_roots(2.0, 1000), rel=1e-12)


def test_the_timed_work_is_not_optimised_away() -> None:
    # 1000 times the square roots: were the body deleted, both medians would be the loop's own
    # cost (tens of ns). Side by side in one process, a 10x margin on a ~1000x difference.
    small = example.time_sum_of_square_roots(2.0, 20, iterations=101)
    large = example.time_sum_of_square_roots(2.0, 20_000, iterations=101)
    assert large["p50_ns"] > 10 * small["p50_ns"]


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^iterations must be at least 1$"):
        example.time_sum_of_square_roots(2.0, 10, iterations=0)
    with pytest.raises(ValueError, match=r"^n must be at least 0, got -1$"):
        example.time_sum_of_square_roots(2.0, -1, iterations=5)


def test_it_names_the_pyinfer_headers_it_was_built_with() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", example.pyinfer_version)
