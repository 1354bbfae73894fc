"""scripts/check_coverage.py: the per-module coverage gate, on small synthetic reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_coverage.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_coverage", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check_coverage = load_script()


def entry(lines: int, covered_lines: int, branches: int = 0, covered_branches: int = 0) -> Any:
    return {
        "summary": {
            "num_statements": lines,
            "covered_lines": covered_lines,
            "num_branches": branches,
            "covered_branches": covered_branches,
        }
    }


def report(**files: Any) -> dict[str, Any]:
    return {"meta": {"format": 3}, "files": files, "totals": {}}


def gate(tmp_path: Path, data: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps(data))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def synthetic(low_covered: int) -> dict[str, Any]:
    """`low` has 1000 lines and branches, `low_covered` of them covered; the rest is at 100%."""
    return {
        "meta": {},
        "files": {
            "src/pyinfer/low.py": entry(800, low_covered - 150, 200, 150),
            "src/pyinfer/big.py": entry(20000, 20000),
            "src/pyinfer/__init__.py": entry(0, 0),
        },
    }


def test_a_module_at_69_9_percent_fails(tmp_path: Path) -> None:
    done = gate(tmp_path, synthetic(699))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == " 69.90%    699/1000  pyinfer.low  BELOW 70%"
    assert "every module of pyinfer needs 70%, the total 85%" in done.stderr


def test_a_module_at_70_percent_passes(tmp_path: Path) -> None:
    done = gate(tmp_path, synthetic(700))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        " 70.00%    700/1000  pyinfer.low",
        "100.00%      0/0     pyinfer",
        "100.00%  20000/20000 pyinfer.big",
        " 98.57%  20700/21000 total",
        "coverage gate passed: every module >= 70%, total >= 85%",
    ]


def test_the_total_counts_lines_and_branches_of_every_module(tmp_path: Path) -> None:
    # Both modules at 84.9% (above 70%), so only the total fails.
    data = report(
        **{
            "src/pyinfer/a.py": entry(900, 770, 100, 79),  # 849/1000
            "src/pyinfer/backends/b.py": entry(1000, 849),
        }
    )
    done = gate(tmp_path, data)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == " 84.90%   1698/2000  total  BELOW 85%"
    assert "BELOW 70%" not in done.stdout
    assert gate(tmp_path, data, "--total-min", "84.9").returncode == 0


def test_thresholds_are_options(tmp_path: Path) -> None:
    data = synthetic(699)
    assert gate(tmp_path, data, "--module-min", "69.9").returncode == 0
    assert gate(tmp_path, data, "--module-min", "69.91").returncode == 1


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("src/pyinfer/cli.py", "pyinfer.cli"),
        ("src/pyinfer/__init__.py", "pyinfer"),
        ("src/pyinfer/backends/_torch.py", "pyinfer.backends._torch"),
        (".venv-ci/lib/python3.11/site-packages/pyinfer/report.py", "pyinfer.report"),
        ("/abs/pyinfer/src/pyinfer/backends/__init__.py", "pyinfer.backends"),
        ("tests/test_cli.py", None),
        ("src/pyinfer/_core.pyi", None),
        ("pyinfer.py", None),
    ],
)
def test_module_names(path: str, name: str | None) -> None:
    assert check_coverage.module_name(path) == name


def test_files_outside_the_package_are_ignored(tmp_path: Path) -> None:
    data = report(
        **{"src/pyinfer/a.py": entry(10, 10), "tests/test_a.py": entry(10, 0)},
    )
    done = gate(tmp_path, data)
    assert done.returncode == 0
    assert "test_a" not in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "JSONDecodeError"),
        ('{"files": {}}', "no module of pyinfer in the report"),
        ('{"meta": {}}', "KeyError('files')"),
        ('{"files": {"src/pyinfer/a.py": {}}}', "KeyError('summary')"),
    ],
)
def test_an_unusable_report_exits_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "coverage.json"
    path.write_text(content)
    assert check_coverage.main([str(path)]) == 2
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"check_coverage: {path}: ")
    assert message in done.stderr


def test_a_missing_report_exits_2(tmp_path: Path) -> None:
    assert check_coverage.main([str(tmp_path / "absent.json")]) == 2


def test_a_module_reported_twice_is_an_error() -> None:
    data = report(
        **{
            "src/pyinfer/a.py": entry(10, 10),
            ".venv/lib/python3.11/site-packages/pyinfer/a.py": entry(10, 0),
        }
    )
    with pytest.raises(ValueError, match=r"module pyinfer\.a appears twice"):
        check_coverage.check(data, 70.0, 85.0)
