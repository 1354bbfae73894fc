from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pyinfer
from pyinfer import cli

SPEC_LINES = (
    "Profiling Results:",
    "==================",
    "Latency Statistics:",
    "Memory Usage:",
)


def test_demo_prints_the_report_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--iterations", "50", "--warmup", "5", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for expected in SPEC_LINES:
        assert expected in lines
    assert "Iterations: 50 (5 warmup)" in lines
    assert "Input Shape: (4, 784)" in lines
    for label in ("Mean:", "Median:", "Std:", "Min:", "Max:", "P95:", "P99:"):
        assert any(line.strip().startswith(label) and line.endswith(("ms", "%)")) for line in lines)
    assert any(line.startswith("Throughput: ") and line.endswith(" FPS") for line in lines)
    assert "  Model Parameters: 7.1 MB" in lines  # (784*1024 + 1024*1024 + 1024*10 + biases) * 4


def test_demo_json_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--iterations", "20", "--warmup", "0", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["iterations"] == 20
    assert payload["latency_ns"]["count"] == 20
    assert payload["latency_ns"]["min"] <= payload["latency_ns"]["percentiles"]["50.0"]
    assert payload["throughput_fps"] == pytest.approx(32e9 / payload["latency_ns"]["mean"])
    assert payload["pyinfer_version"] == pyinfer.__version__
    assert payload["parameter_bytes"] == (784 * 1024 + 1024 * 1024 + 1024 * 10 + 1024 * 2 + 10) * 4


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert "usage: pyinfer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--iterations", "0"], "must be at least 1, got 0"),
        (["demo", "--warmup", "-1"], "must be 0 or more, got -1"),
        (
            ["demo", "--batch-size", "x"],
            "argument --batch-size: must be an integer of at least 1, got 'x'",
        ),
        (["nope"], "invalid choice"),
        (["profile", "m.onnx", "--iterations", "0"], "argument --iterations: must be at least 1"),
        (["profile", "m.onnx", "--warmup", "x"], "must be an integer of 0 or more, got 'x'"),
        (["profile"], "the following arguments are required: model"),
        (["profile", "m.onnx", "--repeat", "0"], "argument --repeat: must be at least 1"),
        (
            ["sweep", "m.onnx", "--batch-sizes", "1", "--cpus", "1-0"],
            "argument --cpus: CPU list '1-0': '1-0' is not a CPU number or a range such as 0-3",
        ),
        (
            ["profile", "m.onnx", "--cpus", "100000"],
            "argument --cpus: CPU(s) 100000 not available to this process (it may run on ",
        ),
        (["profile", "m.onnx", "--cpus", " "], "argument --cpus: must name at least one CPU"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    # One line, without the usage that argparse prints before it, and where to read more.
    assert err.count("\n") == 1
    command = "pyinfer" if argv == ["nope"] else f"pyinfer {argv[0]}"
    assert err.startswith(f"{command}: error: ")
    assert err.endswith(f" (see {command} --help)\n")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (pyinfer.InvalidArgumentError, cli.EXIT_USAGE),  # bad usage: exit 2
        (pyinfer.InferenceError, cli.EXIT_FAILED),  # a failed run: exit 1
        (pyinfer.OutOfMemoryError, cli.EXIT_FAILED),
    ],
)
def test_a_pyinfer_error_is_one_line_and_its_exit_status(
    error: type[Exception],
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail(**_: object) -> None:
        raise error("sizes needs two or more positive widths")

    monkeypatch.setattr("pyinfer.suite.demo.run_demo", fail)
    assert cli.main(["demo"]) == status
    err = capsys.readouterr().err
    assert err == "pyinfer demo: error: sizes needs two or more positive widths\n"


def test_verbose_logs_the_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(**_: object) -> None:
        raise pyinfer.InvalidArgumentError("boom")

    monkeypatch.setattr("pyinfer.suite.demo.run_demo", fail)
    assert cli.main(["--verbose", "demo"]) == cli.EXIT_USAGE
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pyinfer.suite.demo.run_demo", interrupted)
    assert cli.main(["demo"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyinfer", "--version"], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == f"pyinfer {pyinfer.__version__}"


def test_run_demo_rejects_bad_sizes() -> None:
    from pyinfer.suite.demo import run_demo

    with pytest.raises(pyinfer.InvalidArgumentError, match="batch_size must be at least 1"):
        run_demo(batch_size=0)
    with pytest.raises(pyinfer.InvalidArgumentError, match="two or more positive widths"):
        run_demo(sizes=(10,))


def test_module_entry_point_runs_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.machinery
    import importlib.util

    monkeypatch.setattr(sys, "argv", ["pyinfer", "--version"])
    # Executed as `python -m pyinfer` does: the module's own spec (so coverage knows it as
    # pyinfer.__main__) and __name__ "__main__". Not runpy.run_module: installed, pyinfer declares
    # a pytest plugin, so pytest rewrites its modules' asserts, and that import hook cannot give
    # run_module a module's code; nor run_path, which drops the module's name.
    path = Path(pyinfer.__file__).parent / "__main__.py"
    loader = importlib.machinery.SourceFileLoader("pyinfer.__main__", str(path))
    spec = importlib.util.spec_from_file_location("pyinfer.__main__", path, loader=loader)
    assert spec is not None
    code = loader.get_code("pyinfer.__main__")
    namespace = {"__name__": "__main__", "__spec__": spec, "__file__": str(path)}
    with pytest.raises(SystemExit) as info:
        exec(code, namespace)
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyinfer {pyinfer.__version__}"
    assert info.value.code == 0
