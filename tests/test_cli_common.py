"""The option types and the atomic output shared by the ``pyinfer`` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pyinfer.cli import common
from pyinfer.cli import parser as options
from pyinfer.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (options.positive_int, "3", 3),
        (options.non_negative_int, "0", 0),
        (options.positive_float, "0.25", 0.25),
        (options.percent_or_fraction, "1%", 0.01),
        (options.percent_or_fraction, " 2.5% ", 0.025),
        (options.percent_or_fraction, "0.05", 0.05),
        (options.int_list, "1,2, 4,,8", [1, 2, 4, 8]),
    ],
)
def test_values_that_parse(parse: object, text: str, value: object) -> None:
    assert callable(parse)
    assert parse(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (options.positive_int, "0", "must be at least 1, got 0"),
        (options.non_negative_int, "-2", "must be 0 or more, got -2"),
        (options.positive_float, "fast", "must be a number, got 'fast'"),
        (options.positive_float, "0", "must be a finite number above 0, got 0"),
        (options.positive_float, "inf", "must be a finite number above 0, got inf"),
        (options.percent_or_fraction, "lots", "must be a fraction or a percentage, got 'lots'"),
        (options.percent_or_fraction, "100%", "must be between 0 and 100%, got 100%"),
        (options.percent_or_fraction, "0", "must be between 0 and 100%, got 0"),
        (options.int_list, " , ", "must be a comma-separated list of integers, got ' , '"),
        (
            options.int_list,
            "1,two",
            "must be a comma-separated list of integers, got 'two' in '1,two'",
        ),
        (options.int_list, "4,0", "each value must be at least 1, got 0"),
    ],
)
def test_values_refused_with_the_reason(parse: object, text: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == message


def test_write_output_is_atomic_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    assert common.write_output(target, '{"new": 1}', "JSON report") == target
    assert target.read_text() == '{"new": 1}'
    assert capsys.readouterr().err == f"wrote JSON report to {target}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    common.write_output(tmp_path / "b.bin", b"\x00\x01", "bytes")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_write_output_names_the_path_it_cannot_write(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "r.json"
    with pytest.raises(InvalidArgumentError) as info:
        common.write_output(missing, "{}", "JSON report")
    assert str(info.value) == (
        f"cannot write the JSON report to {missing}: no folder {missing.parent}"
    )
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(InvalidArgumentError, match=f"cannot write the CSV to {folder}: "):
        common.write_output(folder, "a,b", "CSV")
