"""The pytest plugin, in test projects made in a temporary folder: the fixture, the JSON and
saved reports, the comparison that fails a slower test, its options, and what loading it costs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyinfer.errors import InvalidArgumentError
from pyinfer.report import ProfileReport
from pyinfer.testing.plugin import benchmark_file_name, parse_threshold

pytest_plugins = ["pytester"]

PLUGIN = ("-p", "pyinfer.testing.plugin", "-p", "no:cacheprovider")

#: A test project's benchmark: sleeps for PYINFER_TEST_DELAY seconds a call (0: about 1 us).
SLEEPER = """
import os
import time


def work(delay):
    time.sleep(delay)


def test_sleep(pyinfer_benchmark):
    report = pyinfer_benchmark(work, float(os.environ["PYINFER_TEST_DELAY"]))
    assert report.model == "test_sleep.work"
"""


@pytest.fixture
def sleeper(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_sleep=SLEEPER)
    monkeypatch.setenv("PYINFER_TEST_DELAY", "0")
    return pytester


def test_the_fixture_times_the_code_and_writes_json_and_saved_reports(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_project="""
        calls = []

        def work(x, scale=1):
            calls.append((x, scale))

        def test_work(pyinfer_benchmark):
            report = pyinfer_benchmark(work, 2, scale=3)
            assert report.model == "test_project.work"
            assert set(calls) == {(2, 3)}
            lat = report.latency
            assert len(calls) == 5 + lat.warmup_iterations + lat.iterations  # 5 runs
            assert pyinfer_benchmark.report is report
        """
    )
    result = pytester.runpytest(
        *PLUGIN, "--pyinfer-json", "out/bench.json", "--pyinfer-save", "kept"
    )
    result.assert_outcomes(passed=1, warnings=0)
    result.stdout.fnmatch_lines(
        [
            "*- pyinfer benchmarks -*",
            "test_project.py::test_work: median * ms, P95 * ms, * calls in 5 runs, *",
        ]
    )
    document = json.loads((pytester.path / "out" / "bench.json").read_text())
    (entry,) = document["pyinfer_benchmarks"]
    assert entry["test"] == "test_project.py::test_work"
    assert entry["name"] == "test_project.py-test_work"
    assert (entry["comparison"], entry["baseline_missing"]) == (None, False)
    report = ProfileReport.from_dict(entry["report"])
    assert report.repetitions is not None
    assert report.repetitions.count == 5
    saved = ProfileReport.load(pytester.path / "kept" / "test_project.py-test_work.json")
    assert saved == report


def test_a_test_slower_than_its_baseline_fails(
    sleeper: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeper.runpytest(*PLUGIN, "--pyinfer-save", "base").assert_outcomes(passed=1)
    monkeypatch.setenv("PYINFER_TEST_DELAY", "0.001")  # a thousand times slower
    result = sleeper.runpytest(*PLUGIN, "--pyinfer-compare", "base", "--pyinfer-compare-fail", "5%")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pyinfer_benchmark: test_sleep.py::test_sleep is slower than its baseline beyond "
            "5%: after is *x slower than before, 95% interval *, over 5+5 runs",
        ]
    )


def test_a_test_within_its_threshold_passes_and_says_its_verdict(
    sleeper: pytest.Pytester,
) -> None:
    sleeper.runpytest(*PLUGIN, "--pyinfer-save", "base").assert_outcomes(passed=1)
    result = sleeper.runpytest(
        *PLUGIN,
        "--pyinfer-compare",
        "base",
        "--pyinfer-compare-fail",
        "300%",
        "--pyinfer-json",
        "b.json",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_sleep.py::test_sleep: median * over 5+5 runs*"])
    (entry,) = json.loads((sleeper.path / "b.json").read_text())["pyinfer_benchmarks"]
    assert (entry["comparison"]["runs_before"], entry["comparison"]["runs_after"]) == (5, 5)


def test_without_a_baseline_the_test_passes_and_says_so(sleeper: pytest.Pytester) -> None:
    (sleeper.path / "empty").mkdir()
    result = sleeper.runpytest(
        *PLUGIN, "--pyinfer-compare", "empty", "--pyinfer-compare-fail", "5%"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*; no baseline to compare with"])


def test_a_comparison_too_few_runs_cannot_judge_fails(sleeper: pytest.Pytester) -> None:
    sleeper.runpytest(*PLUGIN, "--pyinfer-runs", "1", "--pyinfer-save", "one").assert_outcomes(
        passed=1
    )
    result = sleeper.runpytest(
        *PLUGIN, "--pyinfer-runs", "1", "--pyinfer-compare", "one", "--pyinfer-compare-fail", "5%"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pyinfer_benchmark: --pyinfer-compare-fail 5% cannot judge test_sleep.py::test_sleep: "
            "one run per report cannot tell a change from run-to-run variation*"
        ]
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--pyinfer-compare-fail", "5%"),
            "*--pyinfer-compare-fail needs --pyinfer-compare DIR*",
        ),
        (
            ("--pyinfer-compare", "x", "--pyinfer-compare-fail", "fast"),
            "*--pyinfer-compare-fail takes a slowdown in percent, such as 5%, not 'fast'*",
        ),
    ],
)
def test_bad_options_are_usage_errors(
    sleeper: pytest.Pytester, options: tuple[str, ...], message: str
) -> None:
    result = sleeper.runpytest(*PLUGIN, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_manuals_test_example_passes(pytester: pytest.Pytester) -> None:
    manual = Path(__file__).resolve().parents[1] / "docs" / "timing-code.md"
    example = re.findall(r"```python\n(# test_speed.py\n.*?)```", manual.read_text(), re.S)
    pytester.makepyfile(test_speed=example[0])
    result = pytester.runpytest(*PLUGIN, "--pyinfer-runs", "2", "--pyinfer-max-time", "0.5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_speed.py::test_dumps: median * in 2 runs, *"])


def test_the_fixture_times_one_callable_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_twice="""
        def test_twice(pyinfer_benchmark):
            pyinfer_benchmark(len, "ab")
            pyinfer_benchmark(len, "abc")
        """
    )
    result = pytester.runpytest(*PLUGIN, "--pyinfer-runs", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*InvalidArgumentError: pyinfer_benchmark times one callable per test and "
            "test_twice.py::test_twice used it already; write one test per benchmark"
        ]
    )


def test_a_run_without_benchmarks_is_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1, warnings=0)
    # Installed, pytest's header lists the distribution ("plugins: pyinfer-toolkit-0.1.0"):
    # the plugin itself writes nothing.
    lines = [ln for ln in result.stdout.lines if not ln.startswith("plugins:")]
    assert not [ln for ln in lines if "pyinfer" in ln]


def _run_python(code: str, pythonpath: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    return subprocess.run(
        [sys.executable, *code.split("\0")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _src() -> str:
    import pyinfer

    return str(Path(pyinfer.__file__).resolve().parents[1])


def test_loading_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = (
        "-c\0import sys, pyinfer.testing.plugin; "
        "print(sorted(m for m in ('numpy', 'torch', 'onnxruntime', 'tensorflow', "
        "'pyinfer.profiling', 'pyinfer.report') if m in sys.modules))"
    )
    done = _run_python(probe, [_src()], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_registered_by_its_entry_point_and_by_p_it_loads_once(tmp_path: Path) -> None:
    # What pip installs: a distribution whose pytest11 entry point names the plugin.
    dist = tmp_path / "site" / "pyinfer_fake-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pyinfer-fake\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\npyinfer.testing.plugin = pyinfer.testing.plugin\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_len.py").write_text(
        "def test_len(pyinfer_benchmark):\n"
        "    assert pyinfer_benchmark(len, 'abc').model == 'len'\n"
    )
    paths = [_src(), str(tmp_path / "site")]
    base = "-m\0pytest\0-q\0-p\0no:cacheprovider\0--pyinfer-runs\0001"
    for extra in ("", "\0-p\0pyinfer.testing.plugin"):
        done = _run_python(base + extra, paths, project)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout
        assert done.stdout.count("- pyinfer benchmarks -") == 1


@pytest.mark.parametrize(
    ("node_id", "name"),
    [
        ("tests/test_x.py::test_y[a b-1]", "tests-test_x.py-test_y-a-b-1"),
        ("test_x.py::Test::test_z", "test_x.py-Test-test_z"),
        ("../up.py::t", "up.py-t"),
        ("::", "benchmark"),
    ],
)
def test_benchmark_file_names(node_id: str, name: str) -> None:
    assert benchmark_file_name(node_id) == name


def test_long_ids_keep_a_unique_name_of_100_characters() -> None:
    a, b = "t.py::test_" + "x" * 200 + "[1]", "t.py::test_" + "x" * 200 + "[2]"
    assert len(benchmark_file_name(a)) == 100
    assert benchmark_file_name(a) != benchmark_file_name(b)
    assert benchmark_file_name(a)[:89] == benchmark_file_name(b)[:89]


def test_thresholds() -> None:
    assert parse_threshold("5%") == 0.05
    assert parse_threshold(" 12.5 ") == 0.125
    for bad in ("-1%", "five", "nan%", "inf"):
        with pytest.raises(pytest.UsageError, match="takes a slowdown in percent"):
            parse_threshold(bad)
    assert issubclass(InvalidArgumentError, ValueError)
